"""Following a live run from elsewhere: what `engine.broadcast` sends, taken in without changing the broker.

The watcher only looks: it finds the control exchange passively (no run broadcasting: it waits and looks again),
and its one queue is exclusive, server-named and bounded, so it goes with the watcher's connection. It follows
one run by id, or, with none given, the first run it hears and then the next one after that ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.errors import AmqpError
from amqp_lab.config import Settings
from amqp_lab.engine.agent import CONTROL
from amqp_lab.engine.broadcast import END, HELLO, SNAPSHOT
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.report import build_report
from amqp_lab.engine.snapshot import RunSnapshot, snapshot_adapter
from amqp_lab.scenario.model import Scenario

LOOK_AGAIN: Final = 2.0  # seconds between looks for a broadcasting run, and between reconnects
KEPT: Final = 50  # snapshots the watcher's queue holds before dropping its oldest
FAILURES = (AmqpError, aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, ConnectionError, OSError)


@dataclass(frozen=True)
class WatchedRun:
    run_id: str
    scenario: Scenario
    broker: str  # masked, as the run names it


@dataclass
class Watch:
    """What the screens draw: the run followed, its newest snapshot and its end; what the watcher is doing."""

    run: WatchedRun | None = None
    latest: RunSnapshot | None = None
    ended: RunEnded | None = None
    status: str = "connecting…"


class Watcher:
    """Fills a Watch until cancelled; `changed` is called with the Watch after each change worth drawing."""

    def __init__(self, settings: Settings, run_id: str | None, changed: Callable[[Watch], None]) -> None:
        self._settings = settings
        self._wanted = run_id
        self._changed = changed
        self.watch = Watch()
        self._following: str | None = None  # the run id hello was sent for
        self._early: RunSnapshot | None = None  # its newest snapshot before the intro came
        self._queue: AbstractQueue | None = None

    def _say(self, status: str) -> None:
        self.watch.status = status
        self._changed(self.watch)

    async def run(self) -> None:
        broker = self._settings.primary.display()
        which = f"run {self._wanted}" if self._wanted else "a live run"
        while True:
            try:
                connection = await connect_first(self._settings, "amqp-lab watch")
            except FAILURES as exc:
                self._say(f"cannot reach {broker}: {exc}; trying again")
                await asyncio.sleep(LOOK_AGAIN)
                continue
            try:
                async with connection:
                    await self._follow(connection, broker, which)
            except FAILURES as exc:
                self._say(f"lost {broker}: {exc}; reconnecting")
                await asyncio.sleep(LOOK_AGAIN)

    async def _follow(self, connection: aio_pika.abc.AbstractConnection, broker: str, which: str) -> None:
        while True:
            channel = await connection.channel()
            try:
                exchange = await channel.declare_exchange(CONTROL, passive=True)
                break
            except aio_pika.exceptions.ChannelNotFoundEntity:
                self._say(f"waiting for {which} on {broker}: none is broadcasting yet")
                await asyncio.sleep(LOOK_AGAIN)
        self._queue = queue = await channel.declare_queue(
            "", exclusive=True, auto_delete=True, arguments={"x-max-length": KEPT, "x-overflow": "drop-head"}
        )
        selector = self._wanted or "*"
        await queue.bind(exchange, f"{SNAPSHOT}.{selector}")
        await queue.bind(exchange, f"{END}.{selector}")
        if self.watch.run is None:
            self._say(f"waiting for {which} on {broker}")
        self._following = None  # a hello sent on an old connection is answered to a queue that is gone
        async with queue.iterator(no_ack=True) as messages:
            async for message in messages:
                await self._take(message, exchange)

    async def _take(self, message: AbstractIncomingMessage, exchange: aio_pika.abc.AbstractExchange) -> None:
        try:
            if message.type == "snapshot":
                await self._snapshot(snapshot_adapter().validate_json(message.body), exchange)
            elif message.type == "intro":
                self._intro(json.loads(message.body))
            elif message.type == "end" and message.routing_key == f"{END}.{self._following}":
                self._end(json.loads(message.body))
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            self._say(f"a broadcast message it cannot read ({type(exc).__name__}): is that run of another version?")

    async def _snapshot(self, snapshot: RunSnapshot, exchange: aio_pika.abc.AbstractExchange) -> None:
        followed = self.watch.run
        if followed is not None and snapshot.run_id == followed.run_id:
            if self.watch.ended is None:
                self.watch.latest = snapshot
                self._changed(self.watch)
            return
        if followed is not None and self.watch.ended is None:
            return  # another run, while this one goes on
        if snapshot.run_id != self._following:  # a run to follow: ask it what it is
            assert self._queue is not None
            self._following = snapshot.run_id
            await exchange.publish(
                aio_pika.Message(b"", type="hello", reply_to=self._queue.name), routing_key=f"{HELLO}.{snapshot.run_id}"
            )
        self._early = snapshot

    def _intro(self, intro: dict[str, object]) -> None:
        if self._following is None or self._early is None:
            return
        scenario = Scenario.model_validate(intro["scenario"])
        self.watch.run = WatchedRun(self._following, scenario, str(intro["broker"]))
        self.watch.latest, self.watch.ended = self._early, None
        self.watch.status = f"watching run {self._following}"
        self._changed(self.watch)

    def _end(self, end: dict[str, object]) -> None:
        run, final = self.watch.run, self.watch.latest
        if run is None or final is None or run.run_id != self._following:
            return
        leftovers = [str(item) for item in end.get("leftovers") or []]  # type: ignore[attr-defined]
        error = end.get("cleanup_error")
        report = build_report(run.scenario, final, run.broker, leftovers, str(error) if error else None)
        self.watch.ended = RunEnded(final, report, tuple(leftovers))
        self._following = None if self._wanted is None else self._following
        self.watch.status = f"run {run.run_id} ended" + ("; waiting for the next" if self._wanted is None else "")
        self._changed(self.watch)
