"""Clients that publish and await answers on a reply queue: the RPC requester and the map-reduce submitter."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from functools import partial
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from amqp_lab.amqp.model import DIRECT_REPLY_TO, Queue
from amqp_lab.engine.clients.base import REMEMBERED
from amqp_lab.engine.clients.headers import JOB, JOB_REPLY, JOB_TIME, SHARD, SHARDS
from amqp_lab.engine.clients.producers import Producer
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.ledger import lab_id, stamp
from amqp_lab.engine.publishing import ImmediateRefused, Outbox
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.plan import RequesterSpec, SubmitterSpec


class ReplyWaiter(Producer):
    """A client that publishes and awaits answers on its own reply queue (RPC requester, map-reduce submitter)."""

    reply_mode = "server-named"

    spec: RequesterSpec | SubmitterSpec

    def __init__(self, spec: RequesterSpec | SubmitterSpec, ctx: RunContext) -> None:
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
        await queue.consume(partial(self._answered, channel), no_ack=True)
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

    async def _answered(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        self.received += 1
        msg_id = lab_id(message.headers)
        if msg_id is not None:
            self.ctx.ledger.delivered(msg_id, self.reply_queue, bool(message.redelivered))
        if self._came_as_it_closed(channel) and self.reply_queue != DIRECT_REPLY_TO:
            # The reply queue went with the channel, its answers counted discarded: this one among them, taken by
            # no one (counted acked as well, it was a duplicate).
            return
        if msg_id is not None:  # consumed no-ack: delivered is settled
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
                EventKind.REFUSED,
                self.name,
                "RabbitMQ closed the connection: 540 NOT_IMPLEMENTED (immediate=true); reconnecting without it. "
                "Its documented replacement: request queue TTL 0 + dead-letter exchange (ttl0_dead_letter)",
            )
            self.immediate = False
            self.lost(exc)
            return
        if outcome == "returned" and self._forget(cid) is not None:
            counters[Count.RETURNS] += 1
            self.ctx.event(EventKind.RETURN, self.name, f"request {cid} returned: no queue is bound for {key!r}")

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
        self.ctx.event(EventKind.TIMEOUT, self.name, f"request {cid} had no reply within {self.spec.timeout:g} s")

    def _on_answer(self, message: AbstractIncomingMessage) -> None:
        cid = message.correlation_id or ""
        started = self._forget(cid)
        if started is not None:
            self.ctx.counters[Count.REPLIES] += 1
            self._latency.record(time.monotonic() - started)
        elif self._timed_out.pop(cid, None) is not None:
            self.ctx.counters[Count.LATE_REPLIES] += 1
            self.ctx.event(EventKind.LATE, self.name, f"reply to {cid} came after its timeout")
        else:
            self.ctx.counters[Count.ORPHAN_REPLIES] += 1
            self.ctx.event(EventKind.ORPHAN, self.name, f"reply with unknown correlation id {cid!r}")

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
            if outcome == "returned":
                self.ctx.counters[Count.RETURNS] += 1
                self.ctx.event(EventKind.RETURN, self.name, f"job {job} part {key or 'all'} was returned")
            elif outcome == "nacked":
                self.ctx.counters[Count.NACKED] += 1
                self.ctx.event(EventKind.NACK, self.name, f"job {job} part {key or 'all'} was nacked")

    def _on_answer(self, message: AbstractIncomingMessage) -> None:
        self._jobs.discard(str(message.headers.get(JOB, "")))
        self.ctx.counters[Count.RESULTS_RETURNED] += 1
