"""Simulated clients: each has its own connection, as a separate process would, and takes faults live."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue

from amqp_lab.amqp.model import DEFAULT_EXCHANGE, DIRECT_REPLY_TO, Queue
from amqp_lab.broker.connection import Backoff, connect_first
from amqp_lab.broker.errors import AmqpError
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.ledger import ID_HEADER, TIME_HEADER, age, lab_id, stamp
from amqp_lab.engine.metrics import RateMeter
from amqp_lab.engine.publishing import LINK_LOST, ImmediateRefused, Letter, Outbox, link_broke
from amqp_lab.engine.sinks import Sink
from amqp_lab.masking import mask_text
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.plan import ClientSpec, ConsumerSpec, PublisherSpec, ReducerSpec, RequesterSpec, SubmitterSpec

JOB = "x-lab-job"
JOB_TIME = "x-lab-job-ts"
SHARD = "x-lab-shard"
SHARDS = "x-lab-shards"
JOB_REPLY = "x-lab-reply"
COMPLETE = "x-lab-complete"
PUBLISH_WINDOW = 256  # confirms awaited at once by a full-speed publisher
REMEMBERED = 10_000  # timed-out requests and closed jobs kept to recognise late answers
LINK_GRACE = 1.0  # seconds a failed operation waits for its connection's close callback
RECONNECT = Backoff(initial=0.25, cap=2.0)  # a client's pause between attempts once the run has the broker back


class State(enum.Enum):
    STARTING = "starting"
    WAITING = "waiting to join"
    RUNNING = "running"
    PAUSED = "paused"
    RECONNECTING = "reconnecting"
    HUNG = "hung"
    SLOW = "slow"
    REJECTING = "rejecting"
    CRASHED = "crashed"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class ClientStats:
    name: str
    role: str
    state: str
    sent: int
    received: int
    rate: float  # messages per second, sent or received, whichever the client mostly does
    unacked: int
    detail: str = ""  # a fault's parameter, a reason for FAILED
    received_rate: float = 0.0  # messages received per second (a requester's replies, a submitter's results)


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


class Client:
    """Lifecycle shared by every role: start, crash, stop, restart, and recovery from a lost connection.

    When the connection goes away under a client (the broker restarted, the network
    failed) it shows RECONNECTING, waits until the run has the broker and its topology
    back, connects again and opens its channel as at the start: own queues are
    declared again and consumers resume. Producers hold their next message meanwhile.
    """

    spec: Any

    def __init__(self, spec: Any, ctx: RunContext) -> None:
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
        return recovering or (self.active and (self.connection is None or self.connection.is_closed))

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
            self.ctx.event("error", self.name, f"stopped working: {self.detail}")

    async def _cancel_tasks(self, tasks: set[asyncio.Task[Any]] | None = None) -> None:
        tasks = set(self._tasks if tasks is None else tasks)
        tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
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
        if self._recovery is not None and not self._recovery.done():
            return
        self._online.clear()
        if self.reads:
            self.ctx.consumer_lost(self.name)
        reason = mask_text(str(exc), self.ctx.settings.secrets()) if exc else "closed by the broker"
        self.ctx.event("disconnect", self.name, f"connection lost: {reason}")
        self._recovery = asyncio.get_running_loop().create_task(self._recover())

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
            try:
                self._watch(await connect_first(self.ctx.settings, self.connection_name))
                await self._open()
                break
            except (AmqpError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                # RuntimeError: aio-pika's word for a connection that closed again while opening the channel
                attempt += 1
                self.detail = f"attempt {attempt}: {exc}"
                if self.connection is not None:
                    connection, self.connection = self.connection, None
                    with contextlib.suppress(Exception):
                        await connection.close()
                await asyncio.sleep(RECONNECT.delay(attempt))
        self.detail = ""
        self.state = was
        self.ctx.counters[Count.RECONNECTS] += 1
        self.ctx.event("restart", self.name, f"reconnected after {time.monotonic() - lost_at:.1f} s")
        self._online.set()
        if self.reads:
            self.ctx.consumer_back(self.name)

    async def _broker_ready(self) -> None:
        """Until the run has the broker and its topology back."""
        await self.ctx.broker_up.wait()

    def _channel_gone(self) -> None:
        """The channel is closed, or about to be: settle what it held in the ledger (no network here)."""

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
        self.ctx.event("crash", self.name, "crashed: channel dropped")

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
        self.ctx.event("restart", self.name, "restarted")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
        await self._close_connection()

    async def _deliver(self, letter: Letter, reliable: bool) -> str | None:
        """Publish a letter. Reliable: after a lost connection, deliver it again once the client is back,
        until the broker answers (a duplicate if the first copy made it: the ledger counts it). Otherwise
        a lost connection loses the message, which the ledger shows at the end: None."""
        while True:
            assert self._outbox is not None
            gone = self._gone
            try:
                return await self._outbox.deliver(letter)
            except (*LINK_LOST, asyncio.CancelledError) as exc:
                if not link_broke(exc) or not await self._failed_with_link(exc, gone):
                    raise  # this task was cancelled, or the channel alone closed on an error of its own
                if not reliable:
                    self.ctx.counters[Count.PUBLISHES_LOST] += 1
                    return None
            self.ctx.counters[Count.REPUBLISHED] += 1
            await self._online.wait()
            assert self._outbox is not None
            letter = self._outbox.again(letter)

    async def _failed_with_link(self, exc: BaseException, gone: asyncio.Event) -> bool:
        """Whether an operation begun while `gone` was current failed because its connection went away,
        rather than its channel alone. The error can arrive before the connection's close callback."""
        if isinstance(exc, ConnectionError) and gone is self._gone and self.active:
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


class Producer(Client):
    """A client that sends at a rate: pause, resume and rate changes take effect at the next message."""

    def __init__(self, spec: Any, ctx: RunContext) -> None:
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
        self._resumed.clear()
        if self.active:
            self.state = State.PAUSED

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
            self.ctx.event("nack", self.name, f"broker refused a message to {key!r} (nack)")


class Consumer(Client):
    """Takes messages from a queue one at a time, like a real worker; prefetched ones wait unacked.

    Faults: hang (stops working and acking), slow (work takes `factor` times longer),
    reject (reject without requeue) and nack (nack with requeue), healed by `heal()`.
    """

    spec: ConsumerSpec

    def __init__(self, spec: ConsumerSpec, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self._queue: AbstractQueue | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._working = asyncio.Event()
        self._working.set()
        self._held = 0  # delivered and not yet settled
        self.fault: str | None = None
        self.slow_factor = 1.0
        self._sink: Sink | None = ctx.sink(spec.sink) if spec.sink else None
        self._latency = ctx.latency_of("delivery")
        self._acks: set[asyncio.Future[Any]] = set()
        self._read_up_to: int | None = None  # the last stream offset delivered: a reconnect reads on from there
        self._told_of_direct_returns = False

    @property
    def unacked(self) -> int:
        # Crashed or stopped, its channel is gone and the broker took back what it held.
        return self._held if self.active else 0

    async def _open(self) -> None:
        assert self.connection is not None
        spec = self.spec
        # Mandatory replies (a reply queue may be gone) need confirms to be returned: see Outbox.
        self._channel = await self.connection.channel(publisher_confirms=self._reply_confirms)
        await self._channel.set_qos(prefetch_count=spec.prefetch)
        if spec.own_queue is not None:
            q = spec.own_queue
            self._queue = await self._channel.declare_queue(
                q.name,
                durable=q.durable,
                exclusive=q.exclusive,
                auto_delete=q.auto_delete,
                arguments=dict(q.arguments),
            )
            for binding in spec.own_bindings:
                await self._queue.bind(binding.source, binding.routing_key, arguments=dict(binding.arguments) or None)
            self.ctx.queue_declared(q, spec.own_bindings)
        else:
            self._queue = await self._channel.get_queue(spec.queue, ensure=False)
        if spec.reply:
            self._outbox = Outbox(self.ctx, self._channel, spec.reply_mode, confirms=self._reply_confirms)
        self._inbox = asyncio.Queue()
        offset = self._stream_offset()
        arguments = {"x-stream-offset": offset} if offset is not None else None
        self._tag = await self._queue.consume(self._delivered, no_ack=spec.auto_ack, arguments=arguments)
        self._spawn(self._work(), channel_bound=True)

    @property
    def _reply_confirms(self) -> bool:
        spec = self.spec
        return spec.reply and (spec.reply_mandatory or spec.reply_mode == "confirms")

    def _stream_offset(self) -> str | int | datetime | None:
        """Where a stream reader starts: its spec's offset at first, after a reconnect just past what it read."""
        offset = self.spec.offset
        if offset is None:
            return None
        if self._read_up_to is not None:
            return self._read_up_to + 1
        if isinstance(offset, float):  # seconds back: the broker finds the first chunk from then
            return datetime.now(UTC) - timedelta(seconds=offset)
        return offset

    def _channel_gone(self) -> None:
        requeued = 0 if self.spec.auto_ack else self._held
        self._held = 0
        self._inbox = asyncio.Queue()
        if requeued:
            self.ctx.ledger.requeued(requeued)
        own = self.spec.own_queue
        if own is not None and own.exclusive and self.ctx.ledger.topology.queue(own.name) is not None:
            # An exclusive queue lives as long as its connection: what it held is gone with it.
            self.ctx.queue_gone(own.name)

    async def _close_channels(self) -> None:
        await super()._close_channels()
        own = self.spec.own_queue
        if own is not None and own.exclusive:
            await self._close_connection()  # the client "process" is gone, and its queue with it

    async def crash(self) -> None:
        held = self._held
        await super().crash()
        if held:
            fate = "lost (auto ack)" if self.spec.auto_ack else "back to the queue for redelivery"
            self.ctx.event("crash", self.name, f"{held} unacked message(s) {fate}")

    async def _delivered(self, message: AbstractIncomingMessage) -> None:
        # Runs once per delivery: keep it small. Work happens in _work, one message at a time.
        self.received += 1
        self._held += 1
        headers = message.headers
        msg_id = lab_id(headers)
        position = headers.get("x-stream-offset")
        if isinstance(position, int):
            self._read_up_to = position
        if msg_id is not None:
            deaths = headers.get("x-death")
            self.ctx.ledger.delivered(msg_id, self.spec.queue, bool(message.redelivered), deaths[0] if deaths else None)
            waited = age(headers.get(TIME_HEADER))
            if waited is not None:
                self._latency.record(waited)
        self._inbox.put_nowait(message)

    async def _work(self) -> None:
        inbox, rng, spec, gone = self._inbox, self.ctx.rng, self.spec, self._gone
        while True:
            message = await inbox.get()
            await self._working.wait()
            pause = spec.processing.sample(rng) * self.slow_factor
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                await self._settle(message)
            except (*LINK_LOST, asyncio.CancelledError) as exc:
                if link_broke(exc) and await self._failed_with_link(exc, gone):
                    return  # unsettled, so redelivered; recovery starts the work again
                raise

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers
        msg_id = lab_id(headers)
        ledger = self.ctx.ledger
        fault = self.fault
        if fault == "nack" and not self.spec.auto_ack:
            await message.nack(requeue=True)
            self._held -= 1
            ledger.requeued()
            return
        if fault == "reject" and not self.spec.auto_ack:
            await message.reject(requeue=False)
            self._held -= 1
            if msg_id is not None:
                ledger.rejected(msg_id, self.spec.queue, message.routing_key or "", headers)
            return
        if self.spec.reply and message.reply_to:
            await self._reply(message)
        if self._sink is not None:
            self._sink.record(
                {
                    "id": msg_id,
                    "worker": self.name,
                    "queue": self.spec.queue,
                    "finished": time.time(),
                    "payload": len(message.body),
                }
            )
        if not self.spec.auto_ack:
            self._acking(message.ack())
        self._held -= 1
        if msg_id is not None:
            ledger.acked(msg_id, self.spec.queue)

    def _acking(self, ack: Any) -> None:
        """basic.ack is one-way: send it and go on, as AMQP clients do, rather than await the socket write."""
        task = asyncio.ensure_future(ack)
        self._acks.add(task)
        task.add_done_callback(self._ack_sent)

    def _ack_sent(self, task: asyncio.Future[Any]) -> None:
        self._acks.discard(task)
        if not task.cancelled():
            task.exception()  # a closed channel: the message is redelivered, which the ledger expects

    async def _reply(self, message: AbstractIncomingMessage) -> None:
        # Answers carry the request's job fields (map-reduce) and its correlation id (RPC).
        headers = {
            k: v for k, v in message.headers.items() if k.startswith("x-lab-") and k not in (ID_HEADER, TIME_HEADER)
        }
        headers.setdefault(SHARD, self.name)
        assert self._outbox is not None
        letter = self._outbox.letter(
            DEFAULT_EXCHANGE,
            message.reply_to or "",
            b"done",
            persistent=self.spec.reply_persistent,
            mandatory=self.spec.reply_mandatory,
            correlation_id=message.correlation_id,
            headers=headers,
        )
        try:
            outcome = await self._outbox.deliver(letter)
        except (*LINK_LOST, asyncio.CancelledError):
            # The request is not acked: it goes back to its queue and is answered again, under a new id.
            # (aiormq cancels what waits on a connection it found stuck: that is a lost link too.)
            self.ctx.ledger.withdrawn(letter.msg_id, letter.queues)
            raise
        self.sent += 1  # handlers and shards publish each answer: the clients table said "sent 0"
        if outcome == "returned" and (message.reply_to or "").startswith(DIRECT_REPLY_TO):
            if not self._told_of_direct_returns:  # once: RabbitMQ does it to every answer
                self._told_of_direct_returns = True
                self.ctx.event(
                    "info", self.name, "replies returned by the broker: RabbitMQ returns a mandatory direct reply-to "
                    "answer even when it delivers it; the ledger counts those once, as delivered_and_returned",
                )  # fmt: skip
        elif outcome == "returned":
            self.ctx.counters[Count.RETURNS] += 1  # as the ledger's returned: the broker sent it back
            self.ctx.event("return", self.name, f"reply to {message.reply_to} came back: its queue is gone")

    def hang(self) -> None:
        self._working.clear()
        self.state = State.HUNG

    def slow(self, factor: float) -> None:
        self.slow_factor = factor
        self.state = State.SLOW
        self.detail = f"x{factor:g}"

    def misbehave(self, fault: str) -> None:
        self.fault = fault
        self.state = State.REJECTING
        self.detail = "reject, no requeue" if fault == "reject" else "nack, requeue"

    def heal(self) -> None:
        self.fault = None
        self.slow_factor = 1.0
        self.detail = ""
        self._working.set()
        if self.active:
            self.state = State.RUNNING

    async def start(self) -> None:
        self.heal()
        await super().start()


class ReplyWaiter(Producer):
    """A client that publishes and awaits answers on its own reply queue (RPC requester, map-reduce submitter)."""

    reply_mode = "server-named"

    def __init__(self, spec: Any, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self.reply_queue = ""

    def _begin(self) -> None:
        self._spawn(self._loop())

    async def _open(self) -> None:
        assert self.connection is not None
        self._channel = channel = await self.connection.channel(publisher_confirms=self._confirms)
        if self.reply_mode == "direct-reply-to":
            # Must be consumed, no-ack, on the channel the requests are published from.
            queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
            self.reply_queue = DIRECT_REPLY_TO
        else:
            name = getattr(self.spec, "reply_queue_name", None) or ""
            queue = await channel.declare_queue(name, durable=False, exclusive=True, auto_delete=True)
            self.reply_queue = queue.name
            self.ctx.queue_declared(Queue(queue.name, durable=False, exclusive=True, auto_delete=True))
        await queue.consume(self._answered, no_ack=True)
        self._outbox = Outbox(self.ctx, channel, self._mode, self._confirms)

    @property
    def _confirms(self) -> bool:
        return self._mode == "confirms" or self._mandatory

    @property
    def _mandatory(self) -> bool:
        return True

    @property
    def _mode(self) -> Any:
        return "none"

    def _channel_gone(self) -> None:
        if self.reply_queue and self.reply_queue != DIRECT_REPLY_TO:
            # An exclusive auto-delete reply queue goes with its consumer: replies in it are discarded.
            self.ctx.queue_gone(self.reply_queue)

    async def _loop(self) -> None:
        limit = self.spec.limit
        while limit is None or self.sent < limit:
            await self._resumed.wait()
            await self._online.wait()
            await self.ctx.consumers_up.wait()
            await self.pacer.wait()
            if not self._resumed.is_set():
                continue  # paused while pacing (see Publisher._loop)
            self.sent += 1
            await self._send_one(self.sent)
        self.done.set()

    async def _answered(self, message: AbstractIncomingMessage) -> None:
        self.received += 1
        msg_id = lab_id(message.headers)
        if msg_id is not None:  # consumed no-ack: delivered is settled
            self.ctx.ledger.delivered(msg_id, self.reply_queue, bool(message.redelivered))
            self.ctx.ledger.acked(msg_id, self.reply_queue)
        self._on_answer(message)

    async def _send_one(self, n: int) -> None:
        raise NotImplementedError

    def _on_answer(self, message: AbstractIncomingMessage) -> None:
        raise NotImplementedError


class Requester(ReplyWaiter):
    """RPC client: counts replies, timeouts, late replies (after their timeout), orphans and returns."""

    spec: RequesterSpec

    def __init__(self, spec: RequesterSpec, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self.reply_mode = spec.reply_queue
        self.immediate = spec.immediate
        self._pending: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._timed_out: OrderedDict[str, float] = OrderedDict()
        self._latency = ctx.latency_of("rpc")

    @property
    def unacked(self) -> int:
        return len(self._pending)

    async def _send_one(self, n: int) -> None:
        spec, counters = self.spec, self.ctx.counters
        cid = f"{self.name}.{n}"
        unroutable = spec.unroutable and self.ctx.rng.random() < spec.unroutable
        key = spec.unroutable_key if unroutable else spec.routing_key
        loop = asyncio.get_running_loop()
        self._pending[cid] = (time.monotonic(), loop.call_later(spec.timeout, self._timeout, cid))
        counters[Count.REQUESTS] += 1
        assert self._outbox is not None
        letter = self._outbox.letter(
            spec.exchange,
            key,
            self._body,
            persistent=spec.persistent,
            mandatory=spec.mandatory,
            immediate=self.immediate,
            reply_to=self.reply_queue,
            correlation_id=cid,
        )
        try:
            # Not sent again after a lost connection: the request times out, as a caller would see it.
            outcome = await self._deliver(letter, reliable=False)
        except ImmediateRefused as exc:
            self._forget(cid)
            counters[Count.IMMEDIATE_REFUSED] += 1
            self.ctx.event(
                "refused",
                self.name,
                "RabbitMQ closed the connection: 540 NOT_IMPLEMENTED (immediate=true); reconnecting without it. "
                "Its documented replacement: request queue TTL 0 + dead-letter exchange (ttl0_dead_letter)",
            )
            self.immediate = False
            self.lost(exc)
            return
        if outcome == "returned" and self._forget(cid) is not None:
            counters[Count.RETURNS] += 1
            self.ctx.event("return", self.name, f"request {cid} returned: no queue is bound for {key!r}")

    @property
    def _mandatory(self) -> bool:
        return self.spec.mandatory

    def _forget(self, cid: str) -> float | None:
        pending = self._pending.pop(cid, None)
        if pending is None:
            return None
        pending[1].cancel()
        return pending[0]

    def _timeout(self, cid: str) -> None:
        started = self._pending.pop(cid, None)
        if started is None:
            return
        self.ctx.counters[Count.TIMEOUTS] += 1
        self._timed_out[cid] = started[0]
        if len(self._timed_out) > REMEMBERED:
            self._timed_out.popitem(last=False)
        self.ctx.event("timeout", self.name, f"request {cid} had no reply within {self.spec.timeout:g} s")

    def _on_answer(self, message: AbstractIncomingMessage) -> None:
        cid = message.correlation_id or ""
        started = self._forget(cid)
        if started is not None:
            self.ctx.counters[Count.REPLIES] += 1
            self._latency.record(time.monotonic() - started)
        elif self._timed_out.pop(cid, None) is not None:
            self.ctx.counters[Count.LATE_REPLIES] += 1
            self.ctx.event("late", self.name, f"reply to {cid} came after its timeout")
        else:
            self.ctx.counters[Count.ORPHAN_REPLIES] += 1
            self.ctx.event("orphan", self.name, f"reply with unknown correlation id {cid!r}")

    async def stop(self) -> None:
        for cid in list(self._pending):
            self._forget(cid)
        await super().stop()


class Submitter(ReplyWaiter):
    """Map-reduce client and mapper: one job to every shard (fanout), or one part per shard key (direct)."""

    spec: SubmitterSpec

    def __init__(self, spec: SubmitterSpec, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self._jobs: set[str] = set()  # submitted, no combined result yet

    @property
    def _mode(self) -> Any:
        return self.spec.publish_mode

    @property
    def _mandatory(self) -> bool:
        # Fast (no confirms) means fire and forget: a part no shard queue takes is dropped, counted unroutable.
        return self.spec.publish_mode != "none"

    @property
    def unacked(self) -> int:
        return len(self._jobs)

    async def _send_one(self, n: int) -> None:
        spec = self.spec
        job = f"{self.name}.{n}"
        headers: dict[str, Any] = {JOB: job, JOB_TIME: stamp(), SHARDS: spec.shards}
        if spec.want_reply:
            headers[JOB_REPLY] = self.reply_queue
        self._jobs.add(job)
        self.ctx.counters[Count.JOBS_SUBMITTED] += 1
        parts = spec.shard_keys or ("",)
        for key in parts:
            part = {**headers, SHARD: key} if key else headers
            assert self._outbox is not None
            letter = self._outbox.letter(
                spec.exchange,
                key,
                self._body,
                persistent=spec.persistent,
                reply_to=spec.result_queue,
                correlation_id=job,
                headers=part,
                mandatory=self._mandatory,
            )
            outcome = await self._deliver(letter, reliable=spec.publish_mode != "none")
            if outcome in ("returned", "nacked"):
                self.ctx.counters[Count.RETURNS if outcome == "returned" else Count.NACKED] += 1
                self.ctx.event(outcome, self.name, f"job {job} part {key or 'all'} was {outcome}")

    def _on_answer(self, message: AbstractIncomingMessage) -> None:
        self._jobs.discard(str(message.headers.get(JOB, "")))
        self.ctx.counters[Count.RESULTS_RETURNED] += 1


class Reducer(Client):
    """Combines shard results per job.

    wait-for-all holds each partial result unacked in the durable result queue
    until the job is complete, so a reducer crash loses nothing (the broker
    redelivers them). deadline acks at once and emits a partial result after T;
    results that come later are counted as late and discarded.
    """

    spec: ReducerSpec

    def __init__(self, spec: ReducerSpec, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self._jobs: dict[str, dict[str, AbstractIncomingMessage]] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._latency = ctx.latency_of("job")

    @property
    def unacked(self) -> int:
        return sum(len(parts) for parts in self._jobs.values()) if self.spec.policy == "wait-for-all" else 0

    async def _open(self) -> None:
        assert self.connection is not None
        spec = self.spec
        self._channel = channel = await self.connection.channel(publisher_confirms=self._confirms)
        await channel.set_qos(prefetch_count=0 if spec.policy == "wait-for-all" else 100)
        self._outbox = Outbox(self.ctx, channel, spec.publish_mode, confirms=self._confirms)
        self._jobs.clear()
        queue = await channel.get_queue(spec.queue, ensure=False)
        await queue.consume(self._result, no_ack=False)
        if spec.policy == "deadline":
            self._spawn(self._sweep(), channel_bound=True)

    @property
    def _confirms(self) -> bool:
        """Combined results are mandatory (the submitter may be gone) with confirms, unless the mode is fast."""
        return self.spec.publish_mode != "none"

    def _channel_gone(self) -> None:
        held = self.unacked
        self._jobs.clear()
        if held:
            self.ctx.ledger.requeued(held)

    async def _result(self, message: AbstractIncomingMessage) -> None:
        # Bookkeeping first, without awaiting, so concurrent deliveries cannot close a job twice.
        self.received += 1
        headers = message.headers
        msg_id = lab_id(headers)
        if msg_id is not None:
            self.ctx.ledger.delivered(msg_id, self.spec.queue, bool(message.redelivered))
        job = str(headers.get(JOB, ""))
        late = job in self._closed
        finished: dict[str, AbstractIncomingMessage] | None = None
        if late:
            self.ctx.counters[Count.LATE_RESULTS] += 1
        else:
            parts = self._jobs.setdefault(job, {})
            parts[str(headers.get(SHARD, ""))] = message
            if len(parts) >= int(headers.get(SHARDS, 1) or 1):
                finished = self._close(job)
        if late or self.spec.policy == "deadline":
            await self._ack(message)
        if finished is not None:
            await self._combine(job, finished, complete=True)

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        msg_id = lab_id(message.headers)
        if msg_id is not None:
            self.ctx.ledger.acked(msg_id, self.spec.queue)

    def _close(self, job: str) -> dict[str, AbstractIncomingMessage]:
        self._closed[job] = None
        if len(self._closed) > REMEMBERED:
            self._closed.popitem(last=False)
        return self._jobs.pop(job, {})

    async def _combine(self, job: str, parts: dict[str, AbstractIncomingMessage], complete: bool) -> None:
        counters = self.ctx.counters
        counters[Count.RESULTS_ON_TIME] += len(parts)
        counters[Count.JOBS_COMPLETE if complete else Count.JOBS_PARTIAL] += 1
        first = next(iter(parts.values()))
        took = age(first.headers.get(JOB_TIME))
        if took is not None:
            self._latency.record(took)
        if not complete:
            self.ctx.event("partial", self.name, f"job {job}: partial result from {len(parts)} shard(s)")
        reply = first.headers.get(JOB_REPLY)
        if reply:
            self.sent += 1
            assert self._outbox is not None
            await self._outbox.send(
                DEFAULT_EXCHANGE,
                str(reply),
                b"combined",
                persistent=self.spec.persistent,
                mandatory=self._confirms,
                correlation_id=job,
                headers={JOB: job, COMPLETE: complete, SHARDS: len(parts)},
            )
        if self.spec.policy == "wait-for-all":
            for message in parts.values():
                await self._ack(message)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for job, parts in list(self._jobs.items()):
                took = age(next(iter(parts.values())).headers.get(JOB_TIME))
                if took is not None and took > self.spec.deadline:
                    await self._combine(job, self._close(job), complete=False)


def make_client(spec: ClientSpec, ctx: RunContext) -> Client:
    if isinstance(spec, PublisherSpec):
        return Publisher(spec, ctx)
    if isinstance(spec, ConsumerSpec):
        return Consumer(spec, ctx)
    if isinstance(spec, RequesterSpec):
        return Requester(spec, ctx)
    if isinstance(spec, ReducerSpec):
        return Reducer(spec, ctx)
    return Submitter(spec, ctx)
