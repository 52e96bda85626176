"""The general topology model: exchanges of every type, queues with arguments, bindings (also exchange to exchange)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

ExchangeType = Literal["direct", "fanout", "topic", "headers"]

DEFAULT_EXCHANGE = ""
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


@dataclass(frozen=True)
class Exchange:
    name: str
    type: ExchangeType = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alternate(self) -> str | None:
        return self.arguments.get("alternate-exchange")


@dataclass(frozen=True)
class Queue:
    """A queue. RabbitMQ 4.3 refuses queues that are neither durable nor exclusive, so the model does too."""

    name: str
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.durable or self.exclusive):
            raise ValueError(
                f"queue {self.name!r} is neither durable nor exclusive: RabbitMQ 4.3 refuses such queues; "
                "make it durable (shared) or exclusive (owned by one client)"
            )

    @property
    def type(self) -> str:
        return str(self.arguments.get("x-queue-type", "classic"))

    @property
    def dead_letter_exchange(self) -> str | None:
        return self.arguments.get("x-dead-letter-exchange")

    @property
    def dead_letter_routing_key(self) -> str | None:
        return self.arguments.get("x-dead-letter-routing-key")

    @property
    def message_ttl(self) -> float | None:
        """Per-queue message TTL in seconds, if any."""
        ttl = self.arguments.get("x-message-ttl")
        return None if ttl is None else ttl / 1000


@dataclass(frozen=True)
class Binding:
    source: str
    destination: str
    routing_key: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    to_exchange: bool = False


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[Exchange, ...] = ()
    queues: tuple[Queue, ...] = ()
    bindings: tuple[Binding, ...] = ()

    @cached_property
    def _exchanges_by_name(self) -> dict[str, Exchange]:
        return {e.name: e for e in self.exchanges}

    @cached_property
    def _queues_by_name(self) -> dict[str, Queue]:
        return {q.name: q for q in self.queues}

    def exchange(self, name: str) -> Exchange | None:
        return self._exchanges_by_name.get(name)

    def queue(self, name: str) -> Queue | None:
        return self._queues_by_name.get(name)

    def with_queue(self, queue: Queue, bindings: tuple[Binding, ...] = ()) -> Topology:
        """This topology plus a queue a client declares at run time (a reply or subscriber queue)."""
        rest = self.without_queue(queue.name)
        return replace(rest, queues=(*rest.queues, queue), bindings=rest.bindings + bindings)

    def without_queue(self, name: str) -> Topology:
        return replace(
            self,
            queues=tuple(q for q in self.queues if q.name != name),
            bindings=tuple(b for b in self.bindings if b.to_exchange or b.destination != name),
        )

    def problems(self) -> list[str]:
        """What RabbitMQ would refuse, or what points nowhere, in words a user can act on."""
        found: list[str] = []
        exchanges = {e.name for e in self.exchanges}
        queues = {q.name for q in self.queues}
        for name in [e.name for e in self.exchanges] + [q.name for q in self.queues]:
            if name.startswith("amq."):
                found.append(f"{name!r}: names starting with 'amq.' are reserved by the broker")
        for binding in self.bindings:
            if binding.source not in exchanges and not binding.source.startswith("amq."):
                found.append(f"binding from {binding.source!r}: no such exchange in the topology")
            if binding.source == DEFAULT_EXCHANGE:
                found.append("the default exchange cannot be bound: it routes by queue name on its own")
            known = exchanges if binding.to_exchange else queues
            if binding.destination not in known:
                kind = "exchange" if binding.to_exchange else "queue"
                found.append(f"binding to {kind} {binding.destination!r}: no such {kind} in the topology")
        for exchange in self.exchanges:
            if exchange.alternate and exchange.alternate not in exchanges:
                found.append(f"exchange {exchange.name!r}: alternate exchange {exchange.alternate!r} is not declared")
        for queue in self.queues:
            dlx = queue.dead_letter_exchange
            if dlx and dlx not in exchanges:
                found.append(f"queue {queue.name!r}: dead-letter exchange {dlx!r} is not declared")
        return found
