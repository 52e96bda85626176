"""The local routing rules agree with the broker's routing, on the same bindings and messages."""

from __future__ import annotations

import asyncio
import secrets

import aio_pika
import pytest
from amqp_lab.amqp.model import Binding, Exchange, Queue, Topology
from amqp_lab.amqp.routing import route
from amqp_lab.broker.connection import connect_first
from amqp_lab.config import Settings

from tests.conftest import wait_for

pytestmark = pytest.mark.embedded

TOPIC_PATTERNS = ["#", "*", "a.*", "a.#", "*.b.*", "a.#.c", "#.c", "a..c", "a.*.c", ""]
TOPIC_KEYS = ["", "a", "a.", "a.b", "a.b.c", "a..c", "a.c", "x.b.y", "a.b.b.c", "c", ".c"]
HEADER_BINDINGS = [
    {"x-match": "all", "kind": "order", "region": "eu"},
    {"x-match": "any", "kind": "order", "region": "eu"},
    {"x-match": "all", "x-flag": 1},
    {"x-match": "any-with-x", "x-flag": 1},
]
HEADER_MESSAGES = [{"kind": "order", "region": "eu"}, {"kind": "order"}, {"x-flag": 1}, {"region": "us"}, {}]


async def broker_routes(settings: Settings, topology: Topology, messages: list[tuple[str, dict]]) -> list[set[str]]:
    """Declare the topology, publish each message with a marker, and read which queues got it."""
    connection = await connect_first(settings)
    received: list[set[str]] = [set() for _ in messages]
    try:
        channel = await connection.channel()
        for e in topology.exchanges:
            await channel.declare_exchange(e.name, e.type, auto_delete=True)
        for q in topology.queues:
            queue = await channel.declare_queue(q.name, exclusive=True)
            for b in topology.bindings:
                if b.destination == q.name:
                    await queue.bind(b.source, b.routing_key, arguments=dict(b.arguments) or None)

            async def got(message: aio_pika.abc.AbstractIncomingMessage, name: str = q.name) -> None:
                received[int(message.body)].add(name)

            await queue.consume(got, no_ack=True)
        exchange = await channel.get_exchange(topology.exchanges[0].name, ensure=False)
        for n, (key, headers) in enumerate(messages):
            await exchange.publish(aio_pika.Message(str(n).encode(), headers=headers), key)
        expected = sum(len(route(topology, topology.exchanges[0].name, k, h)) for k, h in messages)
        await wait_for(lambda: sum(map(len, received)) >= expected, 10, "the broker to deliver")
        await asyncio.sleep(0.2)  # and nothing more than that arrives: the check is over an interval
    finally:
        await connection.close()
    return received


async def test_topic_routing_matches_the_broker(settings: Settings) -> None:
    x = f"lab.test.{secrets.token_hex(3)}.topic"
    queues = tuple(Queue(f"{x}.q{i}", durable=False, exclusive=True) for i in range(len(TOPIC_PATTERNS)))
    topology = Topology(
        (Exchange(x, "topic"),),
        queues,
        tuple(Binding(x, q.name, p) for q, p in zip(queues, TOPIC_PATTERNS, strict=True)),
    )
    messages = [(key, {}) for key in TOPIC_KEYS]
    actual = await broker_routes(settings, topology, messages)
    for (key, _), got in zip(messages, actual, strict=True):
        assert got == set(route(topology, x, key)), f"routing key {key!r}"


async def test_headers_routing_matches_the_broker(settings: Settings) -> None:
    x = f"lab.test.{secrets.token_hex(3)}.headers"
    queues = tuple(Queue(f"{x}.q{i}", durable=False, exclusive=True) for i in range(len(HEADER_BINDINGS)))
    bindings = tuple(Binding(x, q.name, "", args) for q, args in zip(queues, HEADER_BINDINGS, strict=True))
    topology = Topology((Exchange(x, "headers"),), queues, bindings)
    messages = [("", headers) for headers in HEADER_MESSAGES]
    actual = await broker_routes(settings, topology, messages)
    for (_, headers), got in zip(messages, actual, strict=True):
        assert got == set(route(topology, x, "", headers)), f"headers {headers!r}"
