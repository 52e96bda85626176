"""Clients that send at a rate: the pacing, pause and resume they share, and the publisher."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from amqp_lab.engine.clients.base import Client, State
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.publishing import Outbox
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.plan import PublisherSpec, RequesterSpec, SubmitterSpec

PUBLISH_WINDOW = 256  # confirms awaited at once by a full-speed publisher
AHEAD = 10 * PUBLISH_WINDOW  # copies a full-speed publisher without confirms lets wait in the queues it reaches
HOLD_CHECK = 0.01  # seconds between looks at the backlog while holding


class Pacer:
    """Spaces sends at `rate` per second; None is as fast as possible; 0 waits for a new rate."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._next = time.monotonic()
        self._changed = asyncio.Event()

    def set_rate(self, rate: float | None) -> None:
        self.rate = rate
        self._next = time.monotonic()
        self._changed.set()

    async def wait(self) -> None:
        while self.rate == 0:
            self._changed.clear()
            await self._changed.wait()
        if self.rate is None:
            return
        now = time.monotonic()
        self._next = max(self._next + 1.0 / self.rate, now - 1.0)  # never burst more than a second's worth
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)


class Producer(Client):
    """A client that sends at a rate: pause, resume and rate changes take effect at the next message."""

    spec: PublisherSpec | RequesterSpec | SubmitterSpec

    def __init__(self, spec: PublisherSpec | RequesterSpec | SubmitterSpec, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self.pacer = Pacer(spec.rate)
        self._body = b"x" * spec.payload
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.done = asyncio.Event()  # set when a limit was given and reached

    async def _broker_ready(self) -> None:
        await self.ctx.consumers_up.wait()

    @property
    def reads(self) -> bool:
        return False

    def pause(self) -> None:
        self._hold(State.PAUSED)

    def finish(self) -> None:
        """The run drains: this producer sends nothing more (not a pause: nothing resumes it)."""
        self._hold(State.DONE)

    def _hold(self, state: State) -> None:
        self._resumed.clear()
        if self.active:
            self.state = state

    def resume(self) -> None:
        self._resumed.set()
        if self.state is State.PAUSED:
            self.state = State.RUNNING

    def set_rate(self, rate: float | None) -> None:
        self.pacer.set_rate(rate)


class Publisher(Producer):
    """Publishes to an exchange, cycling over routing keys, with up to PUBLISH_WINDOW confirms awaited at once."""

    spec: PublisherSpec

    def __init__(self, spec: PublisherSpec, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self._window_size = 1 if spec.publish_mode == "transactions" else PUBLISH_WINDOW
        self._window = asyncio.Semaphore(self._window_size)

    async def _open(self) -> None:
        assert self.connection is not None
        confirms = self.spec.publish_mode == "confirms" or self.spec.mandatory
        self._channel = await self.connection.channel(publisher_confirms=confirms)
        self._outbox = Outbox(self.ctx, self._channel, self.spec.publish_mode, confirms)

    def _begin(self) -> None:
        self._spawn(self._loop())

    async def _loop(self) -> None:
        window = self._window
        keys = self.spec.routing_keys
        choose = self.ctx.rng.choice
        limit = self.spec.limit
        headers = dict(self.spec.headers)
        while limit is None or self.sent < limit:
            await self._resumed.wait()
            await self._online.wait()
            await self.ctx.consumers_up.wait()
            await self.pacer.wait()
            if self.pacer.rate is None and self.spec.publish_mode == "none":
                await self._hold_while_ahead(headers)
            await window.acquire()
            if not self._resumed.is_set():
                # Paused while pacing: the run may have settled and drained already, sending now would race it.
                window.release()
                continue
            self.sent += 1
            key = keys[0] if len(keys) == 1 else choose(keys)
            task = self._spawn(self._publish(key, headers))
            task.add_done_callback(lambda _task: window.release())
        await self.settle()
        self.done.set()

    async def _hold_while_ahead(self, headers: dict[str, Any]) -> None:
        """At full speed without confirms nothing paces this publisher but its socket, and it outruns the readers:
        the queues grow until the broker itself slows (a 13,000 backlog halved delivery). Hold while every queue
        it reaches has AHEAD copies waiting, so a queue nobody reads holds nothing back while another is read;
        the clients table says so. Where the run's ledger is not at hand (an agent), nothing holds."""
        keys = self.spec.routing_keys
        backlog = self.ctx.backlog(self.spec.exchange, keys, headers)
        if backlog is None or backlog < AHEAD:
            return
        held = f"holding: {AHEAD:,} or more queued ahead"
        self.detail = self.detail or held
        while backlog is not None and backlog >= AHEAD and self._resumed.is_set():
            await asyncio.sleep(HOLD_CHECK)
            backlog = self.ctx.backlog(self.spec.exchange, keys, headers)
        if self.detail == held:
            self.detail = ""

    async def settle(self) -> None:
        """Wait until every publish in flight has its answer (confirm, nack or return)."""
        for _ in range(self._window_size):
            await self._window.acquire()
        for _ in range(self._window_size):
            self._window.release()

    async def _publish(self, key: str, headers: dict[str, Any]) -> None:
        assert self._outbox is not None
        letter = self._outbox.letter(
            self.spec.exchange,
            key,
            self._body,
            persistent=self.spec.persistent,
            mandatory=self.spec.mandatory,
            headers=headers,
        )
        outcome = await self._deliver(letter, reliable=self.spec.publish_mode != "none")
        if outcome == "returned":
            self.ctx.counters[Count.RETURNS] += 1
        elif outcome == "nacked":
            self.ctx.counters[Count.NACKED] += 1
            self.ctx.event(EventKind.NACK, self.name, f"broker refused a message to {key!r} (nack)")
