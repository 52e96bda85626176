"""Polls the management API into immutable snapshots, one request at a time.

The loop waits `interval` after each answer before asking again (a slow
broker never gets requests stacked on it), and can be woken early when the
user changes the filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from amqp_lab.broker.errors import ManagementError
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import Overview, QueueStats
from amqp_lab.broker.rates import SteadyRates

# Rows the overview shows at most; past it, the filter narrows on the broker.
QUEUE_LIMIT = 2000
OVERVIEW_KEY = ""  # queue keys always hold a NUL between vhost and name


@dataclass(frozen=True)
class BrokerSnapshot:
    """What the management API said at one moment."""

    overview: Overview | None
    queues: tuple[QueueStats, ...]
    matching: int  # queues on the broker that match the filter (may exceed len(queues))
    name_filter: str
    error: ManagementError | None
    taken_at: float  # time.monotonic()

    @property
    def ok(self) -> bool:
        return self.error is None


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
        self._name_filter = ""
        self._wake = asyncio.Event()
        self.last: BrokerSnapshot | None = None
        self._rates = SteadyRates()

    @property
    def name_filter(self) -> str:
        return self._name_filter

    @name_filter.setter
    def name_filter(self, text: str) -> None:
        if text != self._name_filter:
            self._name_filter = text
            self.refresh_now()

    def refresh_now(self) -> None:
        self._wake.set()

    async def poll_once(self) -> BrokerSnapshot:
        name_filter = self._name_filter
        try:
            overview, (queues, matching) = await asyncio.gather(
                self.client.overview(),
                self.client.queues(name=re.escape(name_filter) if name_filter else None, limit=self.limit),
            )
        except ManagementError as exc:
            previous = self.last
            return BrokerSnapshot(
                overview=previous.overview if previous else None,
                queues=previous.queues if previous else (),
                matching=previous.matching if previous else 0,
                name_filter=name_filter,
                error=exc,
                taken_at=time.monotonic(),
            )
        now = time.monotonic()
        rates = self._rates
        overview = replace(overview, rates=rates.steady(OVERVIEW_KEY, overview.totals, overview.rates, now))
        steady = tuple(replace(q, rates=rates.steady(q.key, q.totals, q.rates, now)) for q in queues)
        rates.keep_only([OVERVIEW_KEY, *(q.key for q in steady)])
        return BrokerSnapshot(overview, steady, matching, name_filter, None, now)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            self.last = await self.poll_once()
            self.on_snapshot(self.last)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
