"""What every simulated client shares: its own connection, as a separate process would have, a lifecycle that
takes faults live (crash, stop, restart), and recovery from a lost connection."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from typing import Any

import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from amqp_lab.broker.connection import Backoff, connect_first
from amqp_lab.broker.errors import AmqpError
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.metrics import RateMeter
from amqp_lab.engine.publishing import LINK_LOST, Letter, Outbox, connection_gone, link_broke
from amqp_lab.engine.snapshot import ClientStats
from amqp_lab.masking import mask_text
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.plan import ClientSpec

REMEMBERED = 10_000  # timed-out requests and closed jobs kept to recognise late answers
LINK_GRACE = 1.0  # seconds a failed operation waits for its connection's close callback
RECONNECT = Backoff(initial=0.25, cap=2.0)  # a client's pause between attempts once the run has the broker back
# What ends one reconnect attempt, to be tried again. RuntimeError: aio-pika's word for a connection that closed
# again while the channel opened. CancelledError: aiormq cancels what waits on a connection it closes, a connect
# in progress too (the recovery then ended, its client "reconnecting" for good).
ATTEMPT_FAILED = (AmqpError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, asyncio.CancelledError)


class State(enum.Enum):
    STARTING = "starting"
    WAITING = "waiting to join"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done sending"  # a producer once the run drains: what it sent is being consumed
    RECONNECTING = "reconnecting"
    HUNG = "hung"
    SLOW = "slow"
    REJECTING = "rejecting"
    CRASHED = "crashed"
    STOPPED = "stopped"
    FAILED = "failed"


class Client:
    """Lifecycle shared by every role: start, crash, stop, restart, and recovery from a lost connection.

    When the connection goes away under a client (the broker restarted, the network
    failed) it shows RECONNECTING, waits until the run has the broker and its topology
    back, connects again and opens its channel as at the start: own queues are
    declared again and consumers resume. Producers hold their next message meanwhile.
    """

    spec: ClientSpec

    def __init__(self, spec: ClientSpec, ctx: RunContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.state = State.STARTING
        self.detail = ""
        self.sent = 0
        self.received = 0
        self.connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._channel_tasks: set[asyncio.Task[Any]] = set()  # bound to the channel: restarted with it
        self._recovery: asyncio.Task[None] | None = None
        # Publishes awaiting their connection: a lost connection ends them at once. aiormq can leave one waiting
        # forever for room in a dead connection's write queue (its writer gone), and the channel's lock with it.
        self._delivering: set[asyncio.Timeout] = set()
        self._online = asyncio.Event()
        self._gone = asyncio.Event()  # set when the current connection is lost
        self._outbox: Outbox | None = None
        self._meter = RateMeter()
        self._received_meter = RateMeter()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def unacked(self) -> int:
        return 0

    @property
    def active(self) -> bool:
        return self.state not in (State.CRASHED, State.STOPPED, State.FAILED)

    @property
    def reads(self) -> bool:
        """A consumer of some queue (producers wait for these to be back after an outage)."""
        return True

    @property
    def link_down(self) -> bool:
        """The connection is lost and the client is recovering, or about to."""
        recovering = self._recovery is not None and not self._recovery.done()
        return recovering or (self.active and connection_gone(self.connection))

    def _spawn(self, coroutine: Any, channel_bound: bool = False) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        if channel_bound:
            self._channel_tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._channel_tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, LINK_LOST) and self.link_down:
            return  # the channel went with the connection; recovery opens a new one
        if self.active:
            self.state = State.FAILED
            self.detail = f"{type(exc).__name__}: {exc}"
            self.ctx.event(EventKind.ERROR, self.name, f"stopped working: {self.detail}")

    async def _cancel_tasks(self, tasks: set[asyncio.Task[Any]] | None = None) -> None:
        tasks = set(self._tasks if tasks is None else tasks)
        current = asyncio.current_task()
        if current is not None:
            tasks.discard(current)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def connection_name(self) -> str:
        """How the broker's connection list names this client's connection: its run and its name."""
        return f"run {self.ctx.run_id} {self.name}" if self.ctx.run_id else self.name

    async def start(self) -> None:
        if self.connection is None or self.connection.is_closed:
            self._watch(await connect_first(self.ctx.settings, self.connection_name))
        try:
            await self._open()
        except ATTEMPT_FAILED:
            # The connection went as the channel opened: on a restart, the broker can close the connection the
            # old channel's close left behind (aiormq sends a second channel.close when its close RPC is
            # cancelled under it: 504). Once more, on a new connection.
            if not connection_gone(self.connection) or _being_cancelled():
                raise
            self._watch(await connect_first(self.ctx.settings, self.connection_name))
            await self._open()
        self._online.set()
        self.state = State.RUNNING
        self._begin()

    def _begin(self) -> None:
        """Start the client's own work, which lives across reconnections (a producer's sending loop)."""

    async def _open(self) -> None:
        raise NotImplementedError

    def _watch(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self._gone = asyncio.Event()
        connection.close_callbacks.add(self._connection_closed)

    def _connection_closed(self, sender: object, exc: BaseException | None = None) -> None:
        # A connection the client closes itself is no longer self.connection by then.
        if sender is self.connection and self.active:
            self.lost(exc)

    def lost(self, exc: BaseException | None) -> None:
        """The connection went away: recover in the background (once, however many times this is called)."""
        self._gone.set()
        now = asyncio.get_running_loop().time()
        for delivery in self._delivering:
            delivery.reschedule(now)
        if self._recovery is not None and not self._recovery.done():
            return
        self._online.clear()
        if self.reads:
            self.ctx.consumer_lost(self.name)
        if exc is None:
            reason = "closed by the broker"
        elif isinstance(exc, asyncio.CancelledError):  # aiormq cancels what waits on a connection it found stuck
            reason = "no frame from the broker within the heartbeat timeout"
        else:
            reason = mask_text(str(exc), self.ctx.settings.secrets())
        self.ctx.event(EventKind.DISCONNECT, self.name, f"connection lost: {reason}")
        self._recovery = asyncio.get_running_loop().create_task(self._recover())
        self._recovery.add_done_callback(self._recovery_ended)

    def _recovery_ended(self, recovery: asyncio.Task[None]) -> None:
        """A recovery that ends without reconnecting, and was not stopped, must not leave "reconnecting" on screen."""
        if recovery is not self._recovery or not self.active or self.state != State.RECONNECTING:
            return
        exc = None if recovery.cancelled() else recovery.exception()
        reason = "cancelled" if exc is None else f"{type(exc).__name__}: {exc}"
        self.state = State.FAILED
        self.detail = f"reconnecting ended: {reason}"
        self.ctx.event(EventKind.ERROR, self.name, f"stopped: {self.detail}")

    async def _recover(self) -> None:
        was, lost_at = self.state, time.monotonic()
        self.state = State.RECONNECTING
        await self._cancel_tasks(self._channel_tasks)
        self._channel_gone()
        self._channel = None
        self.connection = None
        attempt = 0
        while True:
            await self._broker_ready()
            connection: AbstractConnection | None = None
            try:
                connection = await connect_first(self.ctx.settings, self.connection_name)
                self._watch(connection)
                await self._open()
                if self._gone.is_set():  # lost again as the channel opened: `lost` left that to this loop
                    raise ConnectionError("the connection closed as the channel opened")
                break
            except ATTEMPT_FAILED as exc:  # only a cancel of this task (stop, crash, restart) ends the recovery
                if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                    raise
                attempt += 1
                self.detail = f"attempt {attempt}: {exc}"
                if connection is not None:
                    self.connection = None
                    with contextlib.suppress(Exception):
                        await connection.close()
                await asyncio.sleep(RECONNECT.delay(attempt))
        self.detail = ""
        self.state = was
        self.ctx.counters[Count.RECONNECTS] += 1
        self.ctx.event(EventKind.RESTART, self.name, f"reconnected after {time.monotonic() - lost_at:.1f} s")
        self._online.set()
        if self.reads:
            self.ctx.consumer_back(self.name)

    async def _broker_ready(self) -> None:
        """Until the run has the broker and its topology back."""
        await self.ctx.broker_up.wait()

    def _channel_gone(self) -> None:
        """The channel is closed, or about to be: settle what it held in the ledger (no network here)."""

    def _came_as_it_closed(self, channel: object) -> bool:
        """Whether a delivery consumed on `channel` came as that channel closed (a stop, a crash, a lost link): the
        client's channel is another by then (none, or the next one), and _channel_gone has settled what it held.
        The broker takes such a message back with the channel, unacked: an ack would reach a closed channel, which
        closes the connection (504), and count acked a message the broker delivers again."""
        return channel is not self._channel

    async def _close_channels(self) -> None:
        self._channel_gone()
        await self._close_channel()

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _close_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _stop_recovering(self) -> None:
        recovery, self._recovery = self._recovery, None
        if recovery is not None and not recovery.done():
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await recovery
        if self.reads:
            self.ctx.consumer_back(self.name)  # stopped or gone: producers no longer wait for it

    async def crash(self) -> None:
        """Drop the channel at once: whatever it held unacked goes back to its queue."""
        await self._stop_recovering()
        await self._cancel_tasks()
        await self._close_channels()
        self.state = State.CRASHED
        self.ctx.event(EventKind.CRASH, self.name, "crashed: channel dropped")

    async def stop(self) -> None:
        await self._stop_recovering()
        await self._cancel_tasks()
        await self._close_channels()
        self._online.clear()
        self.state = State.STOPPED

    async def restart(self) -> None:
        if self.active:
            await self.stop()
        await self.start()
        self.ctx.event(EventKind.RESTART, self.name, "restarted")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
        await self._close_connection()

    async def _deliver(self, letter: Letter, reliable: bool) -> str | None:
        """Publish a letter. Reliable: after a lost connection, deliver it again once the client is back,
        until the broker answers (a duplicate if the first copy made it: the ledger counts it). Otherwise
        a lost connection loses the message, which the ledger shows at the end: None."""
        while True:
            # While the connection is lost, or its new channel not open yet, the outbox is the old one, whose channel
            # only fails or hangs. Asked again once woken: the new link can be lost before this task runs.
            while not self._online.is_set():
                await self._online.wait()
            gone = self._gone
            assert self._outbox is not None
            linked = asyncio.timeout(None)  # `lost` ends it: see _delivering
            try:
                async with linked:
                    self._delivering.add(linked)
                    try:
                        return await self._outbox.deliver(letter)
                    finally:
                        self._delivering.discard(linked)
            except TimeoutError:
                if not linked.expired():
                    raise
            except (*LINK_LOST, asyncio.CancelledError) as exc:
                if not link_broke(exc) or not await self._failed_with_link(exc, gone):
                    raise  # this task was cancelled, or the channel alone closed on an error of its own
            if not reliable:
                self.ctx.counters[Count.PUBLISHES_LOST] += 1
                return None
            self.ctx.counters[Count.REPUBLISHED] += 1
            await self._online.wait()
            assert self._outbox is not None
            letter = self._outbox.again(letter)  # expected where the topology routes it now

    async def _failed_with_link(self, exc: BaseException, gone: asyncio.Event) -> bool:
        """Whether an operation begun while `gone` was current failed because its connection went away,
        rather than its channel alone. The error can arrive before the connection's close callback."""
        went_away = isinstance(exc, ConnectionError) or connection_gone(self.connection)
        if went_away and gone is self._gone and self.active:
            self.lost(exc)
        if not gone.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), LINK_GRACE)
        return gone.is_set()

    def stats(self) -> ClientStats:
        rate = self._meter.sample(max(self.sent, self.received))
        received_rate = self._received_meter.sample(self.received)
        return ClientStats(
            self.name, self.role, self.state.value, self.sent, self.received, rate, self.unacked, self.detail,
            received_rate,
        )  # fmt: skip


def _being_cancelled() -> bool:
    """Whether the running task has been asked to stop (a CancelledError it meets may come from elsewhere)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
