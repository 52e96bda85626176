"""The map-reduce reducer: combines shard results per job, waiting for all or up to a deadline."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from functools import partial

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from amqp_lab.amqp.model import DEFAULT_EXCHANGE
from amqp_lab.engine.clients.base import REMEMBERED, Client
from amqp_lab.engine.clients.headers import COMPLETE, JOB, JOB_REPLY, JOB_TIME, SHARD, SHARDS
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.ledger import age, lab_id
from amqp_lab.engine.publishing import Outbox
from amqp_lab.scenario.figures import Count
from amqp_lab.scenario.plan import ReducerSpec


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
        self._combining: dict[str, dict[str, AbstractIncomingMessage]] = {}  # complete jobs' results, not acked yet
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._latency = ctx.latency_of("job")

    @property
    def unacked(self) -> int:
        if self.spec.policy != "wait-for-all":
            return 0
        return sum(len(parts) for held in (self._jobs, self._combining) for parts in held.values())

    async def _open(self) -> None:
        assert self.connection is not None
        spec = self.spec
        self._channel = channel = await self.connection.channel(publisher_confirms=self._confirms)
        await channel.set_qos(prefetch_count=0 if spec.policy == "wait-for-all" else 100)
        self._outbox = Outbox(self.ctx, channel, spec.publish_mode, confirms=self._confirms)
        self._jobs.clear()
        queue = await channel.get_queue(spec.queue, ensure=False)
        await queue.consume(partial(self._result, channel), no_ack=False)
        if spec.policy == "deadline":
            self._spawn(self._sweep(), channel_bound=True)

    @property
    def _confirms(self) -> bool:
        """Combined results are mandatory (the submitter may be gone) with confirms, unless the mode is fast."""
        return self.spec.publish_mode != "none"

    def _channel_gone(self) -> None:
        held = self.unacked
        self._jobs.clear()
        self._combining.clear()
        if held:
            self.ctx.ledger.requeued(held)

    async def _result(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        # Bookkeeping first, without awaiting, so concurrent deliveries cannot close a job twice.
        self.received += 1
        headers = message.headers
        msg_id = lab_id(headers)
        if msg_id is not None:
            self.ctx.ledger.delivered(msg_id, self.spec.queue, bool(message.redelivered))
        if self._came_as_it_closed(channel):
            self.ctx.ledger.requeued()
            return
        job = str(headers.get(JOB, ""))
        late = job in self._closed
        finished: dict[str, AbstractIncomingMessage] | None = None
        if late:
            self.ctx.counters[Count.LATE_RESULTS] += 1
        else:
            parts = self._jobs.setdefault(job, {})
            parts[str(headers.get(SHARD, ""))] = message
            shards = headers.get(SHARDS)
            if len(parts) >= (shards if isinstance(shards, int) and shards > 0 else 1):
                finished = self._close(job)
        if late or self.spec.policy == "deadline":
            await self._ack(message)
        if finished is not None:
            if self.spec.policy == "wait-for-all":
                self._combining[job] = finished
            await self._combine(job, finished, complete=True)
            if self.spec.policy == "wait-for-all":
                await self._ack_parts(channel, job)

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        msg_id = lab_id(message.headers)
        if msg_id is not None:
            self.ctx.ledger.acked(msg_id, self.spec.queue)

    async def _ack_parts(self, channel: AbstractChannel, job: str) -> None:
        """A complete job's results, held unacked until it was combined. Should their channel have closed meanwhile,
        they are the broker's again, counted so as the channel went (_channel_gone)."""
        parts = self._combining.get(job, {})
        while parts and not self._came_as_it_closed(channel):
            await self._ack(parts.popitem()[1])
        self._combining.pop(job, None)

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
            self.ctx.event(EventKind.PARTIAL, self.name, f"job {job}: partial result from {len(parts)} shard(s)")
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

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for job, parts in list(self._jobs.items()):
                took = age(next(iter(parts.values())).headers.get(JOB_TIME))
                if took is not None and took > self.spec.deadline:
                    await self._combine(job, self._close(job), complete=False)
