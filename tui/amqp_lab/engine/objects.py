"""A run's objects on the broker: declare its topology; at the end read what its queues still hold, so the
ledger tells "still queued" from "lost", then delete what it declared and check that none of it is left."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable

import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from amqp_lab.amqp.deaths import newest_death
from amqp_lab.amqp.model import Exchange, Topology
from amqp_lab.engine.errors import RunError
from amqp_lab.engine.ledger import Ledger, lab_id

REQUEUE_GRACE = 2.0  # seconds the leftover count waits for owed messages to come back to their queue

OpenChannel = Callable[[], Awaitable[AbstractChannel]]


async def declare(channel: AbstractChannel, topology: Topology) -> None:
    """Exchanges, queues, then bindings (idempotent: declaring again after an outage restores what was lost)."""
    try:
        for e in topology.exchanges:
            await channel.declare_exchange(
                e.name,
                e.type,
                durable=e.durable,
                auto_delete=e.auto_delete,
                internal=e.internal,
                arguments=dict(e.arguments) or None,
            )
        for q in topology.queues:
            await channel.declare_queue(
                q.name,
                durable=q.durable,
                exclusive=q.exclusive,
                auto_delete=q.auto_delete,
                arguments=dict(q.arguments) or None,
            )
        for b in topology.bindings:
            source = await channel.get_exchange(b.source, ensure=False)
            if b.to_exchange:
                target = await channel.get_exchange(b.destination, ensure=False)
                await target.bind(source, b.routing_key, arguments=dict(b.arguments) or None)
            else:
                queue = await channel.get_queue(b.destination, ensure=False)
                await queue.bind(source, b.routing_key, arguments=dict(b.arguments) or None)
    except aiormq.exceptions.AMQPError as exc:
        raise RunError(f"the broker refused the topology: {exc}") from None


async def count_leftovers(open_channel: OpenChannel, ledger: Ledger, queues: Iterable[str]) -> None:
    """Read what is still in the lab's queues (consumed no-ack, so they end empty) into the ledger."""
    channel = await open_channel()
    # Nothing owed in a stream (it owes nothing to anyone) nor in an empty-handed queue: nothing to tell apart.
    owed = [q for q in queues if q not in ledger.streams and ledger.outstanding_in(q)]
    # What such a queue holds may be dead-lettered meanwhile (requeued at teardown into a TTL 0 queue): read
    # where it goes too, after the queue itself.
    followed = [d for q in owed for d in sorted(ledger.dead_letter_queues(q)) if d not in owed]
    for queue in [*owed, *dict.fromkeys(followed)]:
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aiormq.exceptions.AMQPError:
            channel = await open_channel()
            continue
        await channel.set_qos(prefetch_count=1000)
        quiet = asyncio.Event()

        async def found(message: AbstractIncomingMessage, name: str = queue, event: asyncio.Event = quiet) -> None:
            msg_id = lab_id(message.headers)
            if msg_id is not None:
                ledger.drained(msg_id, name, newest_death(message.headers))
            event.set()

        tag = await declared.consume(found, no_ack=True)
        # A quorum queue takes back what closed consumers held through its log, a moment later.
        deadline = time.monotonic() + REQUEUE_GRACE
        while True:
            quiet.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(quiet.wait(), 0.3)
            if not quiet.is_set() and (not ledger.outstanding_in(queue) or time.monotonic() >= deadline):
                break
        await declared.cancel(tag)
    with contextlib.suppress(Exception):
        await channel.close()


async def delete(open_channel: OpenChannel, queues: Iterable[str], exchanges: Iterable[Exchange]) -> list[str]:
    """Delete the queues and exchanges; what is still there afterwards, as "queue <name>" or "exchange <name>"."""
    queues, exchanges = sorted(queues), list(exchanges)
    channel = await open_channel()
    for queue in queues:
        with contextlib.suppress(aiormq.exceptions.AMQPError):
            await channel.queue_delete(queue)
    for exchange in exchanges:
        with contextlib.suppress(aiormq.exceptions.AMQPError):
            await channel.exchange_delete(exchange.name)
    with contextlib.suppress(Exception):
        await channel.close()
    left = [f"queue {q}" for q in queues if await _exists(open_channel, "queue", q)]
    return left + [f"exchange {e.name}" for e in exchanges if await _exists(open_channel, "exchange", e.name)]


async def _exists(open_channel: OpenChannel, kind: str, name: str) -> bool:
    """A passive declare on a channel of its own: a 404 closes the channel."""
    channel = await open_channel()
    try:
        if kind == "queue":
            await channel.declare_queue(name, passive=True)
        else:
            await channel.declare_exchange(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    with contextlib.suppress(Exception):
        await channel.close()
    return True
