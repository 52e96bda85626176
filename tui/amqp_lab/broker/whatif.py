"""Routing what-if on a live broker: which bindings match a routing key, and which queues would get the message.

Reads the bindings of the exchange and of every exchange a message could go
on to (exchange-to-exchange bindings, alternate exchanges) from the
management API, then evaluates RabbitMQ's rules locally (amqp.routing):
nothing is published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from amqp_lab.amqp import model
from amqp_lab.amqp.routing import Hop, reached, route, trace
from amqp_lab.broker.errors import ManagementObjectGone
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import Binding as BrokerBinding
from amqp_lab.broker.models import Exchange as BrokerExchange

EVALUATED = ("direct", "fanout", "topic", "headers")
MAX_EXCHANGES = 50  # a chain longer than this is not worth fetching on every question


@dataclass(frozen=True)
class Routes:
    """What the broker's bindings, as fetched, say about any message published to `exchange`."""

    vhost: str
    exchange: str
    topology: model.Topology
    unevaluated: tuple[str, ...]  # exchanges of types whose routing the lab does not know (plugins)

    def ask(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> Answer:
        if self.exchange == model.DEFAULT_EXCHANGE:  # no bindings to trace: the key names the queue
            return Answer((), tuple(route(self.topology, self.exchange, routing_key)))
        hops = trace(self.topology, self.exchange, routing_key, headers)
        return Answer(tuple(hops), tuple(sorted(reached(self.topology, hops))))


@dataclass(frozen=True)
class Answer:
    hops: tuple[Hop, ...]
    queues: tuple[str, ...]

    @property
    def unroutable(self) -> bool:
        return not self.queues


async def fetch_routes(client: ManagementClient, vhost: str, exchange: str) -> Routes:
    """The part of the vhost a message published to `exchange` can reach."""
    if exchange == model.DEFAULT_EXCHANGE:
        queues = tuple(model.Queue(q.name) for q in (await client.queues(vhost, limit=100_000))[0])
        return Routes(vhost, exchange, model.Topology(queues=queues), ())
    exchanges: dict[str, BrokerExchange] = {}
    bindings: list[BrokerBinding] = []
    pending = [exchange]
    while pending and len(exchanges) < MAX_EXCHANGES:
        name = pending.pop(0)
        if name in exchanges:
            continue
        try:
            found = await client.exchange(vhost, name)
        except ManagementObjectGone:
            if name == exchange:
                raise
            continue  # an alternate exchange that is not declared: RabbitMQ drops the message the same way
        exchanges[name] = found
        from_here = await client.bindings_from(vhost, name)
        bindings.extend(from_here)
        pending.extend(b.destination for b in from_here if b.destination_type == "exchange")
        if found.alternate:
            pending.append(found.alternate)
    topology = model.Topology(
        exchanges=tuple(
            model.Exchange(e.name, e.type, arguments=dict(e.arguments))  # type: ignore[arg-type]
            for e in exchanges.values()
        ),
        queues=tuple(
            model.Queue(name) for name in sorted({b.destination for b in bindings if b.destination_type == "queue"})
        ),
        bindings=tuple(
            model.Binding(b.source, b.destination, b.routing_key, dict(b.arguments), b.destination_type == "exchange")
            for b in bindings
        ),
    )
    unevaluated = tuple(e.name for e in exchanges.values() if e.type not in EVALUATED)
    return Routes(vhost, exchange, topology, unevaluated)
