"""Polls the management API into immutable snapshots, one poll at a time.

The loop waits `interval` after each answer before asking again (a slow
broker never gets requests stacked on it), and can be woken early when the
user changes the filter. It fetches the overview and the queue table always,
and the other listings only while a screen shows them (`watching`). When the
API is slow to answer it waits longer, and the snapshot says so.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from amqp_lab.broker.errors import ManagementError, ManagementForbidden
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import (
    Channel,
    ClientConnection,
    Consumer,
    Exchange,
    MessageRates,
    NodeStatus,
    Overview,
    QueueStats,
)
from amqp_lab.broker.rates import SteadyRates, channel_key

# Rows the queue table holds at most: one page, far more than a screen shows. Past it, the
# broker sorts by the table's column before paging, so the rows that matter come first.
QUEUE_LIMIT = 500
FIRST_PAGE = 100  # queues a view's first poll asks for: a screenful, while the whole page is on its way
OVERVIEW_KEY = ""  # queue keys always hold a NUL between vhost and name
LISTINGS = ("exchanges", "connections", "channels", "consumers")
SLOW = 0.5  # an answer that takes over half the interval is slow: wait longer before the next
SLOW_FACTOR = 4  # after a slow answer, wait this many times as long as it took
MAX_WAIT = 60.0


@dataclass(frozen=True)
class BrokerSnapshot:
    """What the management API said at one moment."""

    overview: Overview | None
    queues: tuple[QueueStats, ...]
    matching: int  # queues on the broker that match the filter (may exceed len(queues))
    name_filter: str
    error: ManagementError | None
    taken_at: float  # time.monotonic()
    fresh_at: float | None = None  # when the figures shown were fetched (before taken_at after an error)
    vhost: str | None = None  # None: every vhost
    exchanges: tuple[Exchange, ...] | None = None  # None: not fetched, no screen shows them
    connections: tuple[ClientConnection, ...] | None = None
    channels: tuple[Channel, ...] | None = None
    consumers: tuple[Consumer, ...] | None = None
    nodes: tuple[NodeStatus, ...] | None = None  # None: the API did not say (a user without the monitoring tag)
    answered_in: float = 0.0  # seconds the poll took
    slowed_to: float | None = None  # the wait before the next poll, when a slow API made it longer
    in_broker_order: bool = False  # the broker's first queues, unsorted, of more than it holds: more follow at once

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Wanted:
    """What the screens want polled besides the overview."""

    name_filter: str = ""  # queues whose name contains it
    vhost: str | None = None  # None: every vhost
    sort: tuple[str, bool] = ("name", False)  # the queue field (dotted, as the API names it) the broker sorts by
    listings: frozenset[str] = frozenset()  # of LISTINGS, those a screen shows now; the others are not fetched


class ManagementPoller:
    def __init__(
        self,
        client: ManagementClient,
        interval: float,
        on_snapshot: Callable[[BrokerSnapshot], None],
        limit: int = QUEUE_LIMIT,
    ) -> None:
        self.client = client
        self.interval = interval
        self.on_snapshot = on_snapshot
        self.limit = limit
        self._wanted = Wanted()
        self._wake = asyncio.Event()
        self.last: BrokerSnapshot | None = None
        self._rates = SteadyRates()

    @property
    def wanted(self) -> Wanted:
        return self._wanted

    @wanted.setter
    def wanted(self, wanted: Wanted) -> None:
        """A change that asks for something the last look did not fetch is asked for at once, not at the next
        interval; one that only drops listings (a screen left, a tab that shows fewer) waits for it: a look
        now would cost the broker a listing nobody waits for (with 20,000 queues, a sorted page of them)."""
        before, self._wanted = self._wanted, wanted
        only_fewer = wanted.listings <= before.listings and replace(wanted, listings=before.listings) == before
        if not only_fewer:
            self.refresh_now()

    def refresh_now(self) -> None:
        self._wake.set()

    async def poll_once(self, scheduled: bool = True) -> BrokerSnapshot:
        """One poll; `scheduled` false when it was asked for between the regular ones (see broker/rates.py)."""
        wanted = self._wanted
        name_filter, vhost, watching, (sort, reverse) = wanted.name_filter, wanted.vhost, wanted.listings, wanted.sort
        # Sorting costs the broker most of a listing (with 20,000 queues, RabbitMQ 3.10 answers a sorted page in
        # 1.2 to 2.5 s and an unsorted one in 0.3 to 0.5 s), and buys nothing when one page holds every match. So
        # a view's first poll asks for a screenful, unsorted; the broker sorts only when the last poll of the
        # view said more match than a page holds.
        previous = self.last
        known = previous is not None and previous.ok and (previous.vhost, previous.name_filter) == (vhost, name_filter)
        broker_sorts = known and previous is not None and previous.matching > self.limit
        limit = self.limit if known else min(FIRST_PAGE, self.limit)
        client = self.client
        started = time.monotonic()
        listings: dict[str, Callable[[], Awaitable[Sequence[Any]]]] = {
            "exchanges": lambda: client.exchanges(vhost),
            "connections": client.connections,
            "channels": client.channels,
            "consumers": lambda: client.consumers(vhost),
        }
        watched = [name for name in LISTINGS if name in watching]
        try:
            overview, nodes, (queues, matching), fetched = await asyncio.gather(
                client.overview(),
                self._nodes(),
                client.queues(
                    vhost,
                    name=re.escape(name_filter) if name_filter else None,
                    limit=limit,
                    sort=sort if broker_sorts else None,
                    sort_reverse=reverse,
                ),
                asyncio.gather(*(listings[name]() for name in watched)),
            )
        except ManagementError as exc:
            previous = self.last
            now = time.monotonic()
            if previous is None:
                return BrokerSnapshot(None, (), 0, name_filter, exc, now, vhost=vhost, answered_in=now - started)
            return replace(previous, error=exc, taken_at=now, answered_in=now - started)
        now = time.monotonic()
        rates = self._rates
        overview = replace(overview, rates=rates.steady(OVERVIEW_KEY, overview.totals, overview.rates, now, scheduled))
        steady = tuple(replace(q, rates=rates.steady(q.key, q.totals, q.rates, now, scheduled)) for q in queues)
        extra = {name: tuple(found) for name, found in zip(watched, fetched, strict=True)}
        steady_keys = [OVERVIEW_KEY, *(q.key for q in steady)]
        exchanges = channels = None
        if "exchanges" in extra:
            exchanges = tuple(self._steady_exchange(e, now, scheduled) for e in extra["exchanges"])
            steady_keys += ["x" + e.key for e in exchanges]
        if "channels" in extra:
            channels = tuple(self._steady_channel(c, now, scheduled) for c in extra["channels"])
            steady_keys += [channel_key(c.name) for c in channels]
        rates.keep_only(steady_keys)
        in_broker_order = not broker_sorts and matching > len(queues)
        if in_broker_order:
            self.refresh_now()  # the whole or sorted page at once: these rows are shown meanwhile, and say so
        return BrokerSnapshot(
            overview,
            steady,
            matching,
            name_filter,
            None,
            now,
            now,
            vhost,
            nodes=nodes,
            answered_in=now - started,
            exchanges=exchanges,
            connections=extra.get("connections"),
            channels=channels,
            consumers=extra.get("consumers"),
            in_broker_order=in_broker_order,
        )

    async def _nodes(self) -> tuple[NodeStatus, ...] | None:
        """The cluster's nodes; None where the API will not list them (403 without the monitoring tag)."""
        try:
            return tuple(await self.client.nodes())
        except ManagementForbidden:
            return None

    def _steady_exchange(self, exchange: Exchange, now: float, scheduled: bool) -> Exchange:
        reported = MessageRates(publish=exchange.publish_in, deliver=exchange.publish_out)
        rates = self._rates.steady("x" + exchange.key, exchange.totals, reported, now, scheduled)
        return replace(exchange, publish_in=rates.publish, publish_out=rates.deliver)

    def _steady_channel(self, channel: Channel, now: float, scheduled: bool) -> Channel:
        """Its ack rate held between the broker's steps, as the queues' (the raw rate read 0 on 3.10 while acks
        flowed); the consumers tab shows their channel's."""
        steady = self._rates.channel_ack_rate(channel.name, channel.acks, channel.ack_rate, now, scheduled)
        return replace(channel, ack_rate=steady)

    def next_wait(self, answered_in: float) -> float:
        """The interval, or longer after a slow answer: a struggling API is not asked again at once."""
        if answered_in <= SLOW * self.interval:
            return self.interval
        return min(MAX_WAIT, max(self.interval, SLOW_FACTOR * answered_in))

    async def run(self) -> None:
        scheduled = True
        while True:
            self._wake.clear()
            snapshot = await self.poll_once(scheduled)
            wait = self.next_wait(snapshot.answered_in)
            self.last = replace(snapshot, slowed_to=wait if wait > self.interval else None)
            self.on_snapshot(self.last)
            scheduled = False
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                scheduled = True
