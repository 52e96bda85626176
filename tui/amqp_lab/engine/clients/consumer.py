"""The worker: takes messages from a queue one at a time, acks, replies, and takes consumer faults."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast

from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.abc import ArgumentsType, DeliveredMessage
from pamqp.commands import Basic

from amqp_lab.amqp.deaths import newest_death
from amqp_lab.amqp.model import DEFAULT_EXCHANGE, DIRECT_REPLY_TO
from amqp_lab.engine.clients.base import Client, State
from amqp_lab.engine.clients.headers import SHARD
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.ledger import ID_HEADER, TIME_HEADER, age, lab_id
from amqp_lab.engine.publishing import LINK_LOST, Outbox, link_broke
from amqp_lab.engine.sinks import Sink
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.plan import ConsumerSpec


def headers_of(message: DeliveredMessage) -> dict[str, Any]:
    return message.header.properties.headers or {}


def delivery_of(message: DeliveredMessage) -> Basic.Deliver:
    """The basic.deliver a consumer's message came with (aiormq types it as any way a message arrives)."""
    return cast(Basic.Deliver, message.delivery)


async def _nothing() -> None:
    """What a delivery leaves aiormq's task to do when the work loop takes it, or the broker takes it back."""


def tag_of(delivery: Basic.Deliver) -> int:
    assert delivery.delivery_tag is not None, "a basic.deliver always has its tag"
    return delivery.delivery_tag


class Consumer(Client):
    """Takes messages from a queue one at a time, like a real worker; prefetched ones wait unacked.

    Faults: hang (stops working and acking), slow (work takes `factor` times longer),
    reject (reject without requeue) and nack (nack with requeue), healed by `heal()`.
    """

    spec: ConsumerSpec

    def __init__(self, spec: ConsumerSpec, ctx: RunContext) -> None:
        super().__init__(spec, ctx)
        self._queue: AbstractQueue | None = None
        self._inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        self._working = asyncio.Event()
        self._working.set()
        self._busy = False  # the work loop has a message in hand
        # No processing time and nothing to send back: settling is one ack (see _delivered).
        self._instant = spec.processing.takes_no_time and not spec.reply
        self._held = 0  # delivered and not yet settled
        self.fault: str | None = None
        self.slow_factor = 1.0
        self._sink: Sink | None = ctx.sink(spec.sink) if spec.sink else None
        self._latency = ctx.latency_of("delivery")
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
        arguments: ArgumentsType | None = {"x-stream-offset": offset} if offset is not None else None
        # On aiormq's channel: aio-pika's consumer wraps each delivery in a message object and a second task,
        # most of what a worker costs beyond aiormq's own (profiled; see bench/workers_throughput.py).
        channel = await self._channel.get_underlay_channel()
        delivered = partial(self._delivered, self._channel)
        await channel.basic_consume(self._queue.name, delivered, no_ack=spec.auto_ack, arguments=arguments)
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
            self.ctx.event(EventKind.CRASH, self.name, f"{held} unacked message(s) {fate}")

    def _delivered(self, channel: AbstractChannel, message: DeliveredMessage) -> Coroutine[Any, Any, None]:
        """aiormq calls this as it reads a delivery, and runs what it returns in a task of its own. The count is
        taken here, at once: a task the closing channel cancels before it starts would have missed it. Runs once
        per delivery: keep it small. Work happens in _work, one message at a time."""
        self.received += 1
        headers = headers_of(message)
        msg_id = lab_id(headers)
        position = headers.get("x-stream-offset")
        if isinstance(position, int):
            self._read_up_to = position
        if msg_id is not None:
            death = newest_death(headers)
            self.ctx.ledger.delivered(msg_id, self.spec.queue, delivery_of(message).redelivered, death)
            waited = age(headers.get(TIME_HEADER))
            if waited is not None:
                self._latency.record(waited)
        if self._came_as_it_closed(channel):
            if not self.spec.auto_ack:
                self.ctx.ledger.requeued()
            return _nothing()
        self._held += 1
        if self._instant and not self._busy and self._inbox.empty() and self._working.is_set() and not self.fault:
            return self._settle_at_once(channel, message)
        self._inbox.put_nowait(message)
        return _nothing()

    async def _settle_at_once(self, channel: AbstractChannel, message: DeliveredMessage) -> None:
        """A worker with nothing in hand takes the message as it arrives, as the work loop would a task switch later
        (that switch was about 6 % of a full-speed run's client CPU). Its ack cannot fail (see _settle), but it can
        wait for room in the connection's write queue: bound to the channel meanwhile, like the work loop, so a
        crash or a lost link cancels it before counting what the channel held. A channel that closed before this
        task ran took the message back, counted with what it held; a fault that came meanwhile is the loop's."""
        if self._came_as_it_closed(channel):
            return
        if not self._working.is_set() or self.fault:
            self._inbox.put_nowait(message)
            return
        delivering = asyncio.current_task()
        assert delivering is not None, "aiormq calls a consumer in a task of its own"
        self._tasks.add(delivering)
        self._channel_tasks.add(delivering)
        try:
            await self._settle(message)
        finally:
            self._tasks.discard(delivering)
            self._channel_tasks.discard(delivering)

    async def _work(self) -> None:
        inbox, rng, spec, gone = self._inbox, self.ctx.rng, self.spec, self._gone
        while True:
            message = await inbox.get()
            self._busy = True
            try:
                await self._working.wait()
                pause = spec.processing.sample(rng) * self.slow_factor
                if pause > 0:
                    await asyncio.sleep(pause)
                await self._settle(message)
            except (*LINK_LOST, asyncio.CancelledError) as exc:
                if link_broke(exc) and await self._failed_with_link(exc, gone):
                    return  # unsettled, so redelivered; recovery starts the work again
                raise
            finally:
                self._busy = False

    async def _settle(self, message: DeliveredMessage) -> None:
        headers = headers_of(message)
        msg_id = lab_id(headers)
        ledger = self.ctx.ledger
        fault = self.fault
        delivery = delivery_of(message)
        if fault == "nack" and not self.spec.auto_ack:
            await message.channel.basic_nack(tag_of(delivery), requeue=True)
            self._held -= 1
            ledger.requeued()
            return
        if fault == "reject" and not self.spec.auto_ack:
            await message.channel.basic_reject(tag_of(delivery), requeue=False)
            self._held -= 1
            if msg_id is not None:
                ledger.rejected(msg_id, self.spec.queue, delivery.routing_key or "", headers)
            return
        if self.spec.reply and message.header.properties.reply_to:
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
            # basic.ack is one-way: hand it to the connection's writer and go on, as AMQP clients do, rather
            # than wait for the socket write. On a closed channel the message is redelivered, which the ledger
            # expects.
            with contextlib.suppress(*LINK_LOST):
                await message.channel.basic_ack(tag_of(delivery), wait=False)
        self._held -= 1
        if msg_id is not None:
            ledger.acked(msg_id, self.spec.queue)

    async def _reply(self, message: DeliveredMessage) -> None:
        # Answers carry the request's job fields (map-reduce) and its correlation id (RPC).
        headers = {
            k: v for k, v in headers_of(message).items() if k.startswith("x-lab-") and k not in (ID_HEADER, TIME_HEADER)
        }
        properties = message.header.properties
        reply_to = properties.reply_to or ""
        headers.setdefault(SHARD, self.name)
        assert self._outbox is not None
        letter = self._outbox.letter(
            DEFAULT_EXCHANGE,
            reply_to,
            b"done",
            persistent=self.spec.reply_persistent,
            mandatory=self.spec.reply_mandatory,
            correlation_id=properties.correlation_id,
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
        if outcome == "returned" and reply_to.startswith(DIRECT_REPLY_TO):
            if not self._told_of_direct_returns:  # once: RabbitMQ does it to every answer
                self._told_of_direct_returns = True
                self.ctx.event(
                    EventKind.INFO,
                    self.name,
                    "replies returned by the broker: RabbitMQ returns a mandatory direct reply-to "
                    "answer even when it delivers it; the ledger counts those once, as delivered_and_returned",
                )
        elif outcome == "returned":
            self.ctx.counters[Count.REPLIES_RETURNED] += 1  # part of the ledger's returned: the broker sent it back
            self.ctx.event(EventKind.RETURN, self.name, f"reply to {reply_to} came back: its queue is gone")

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
