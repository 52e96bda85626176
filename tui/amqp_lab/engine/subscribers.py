"""Pub-sub's delivery check: for each subscriber, the events its patterns select against what it got, and how
many were published while it had no queue (missed, as a non-durable subscriber misses them)."""

from __future__ import annotations

from amqp_lab.amqp.routing import binding_matches
from amqp_lab.engine.ledger import Ledger
from amqp_lab.engine.snapshot import SubscriberCheck
from amqp_lab.scenario.plan import ConsumerSpec, Plan


class DeliveryCheck:
    def __init__(self, plan: Plan, ledger: Ledger) -> None:
        self._plan = plan
        self._ledger = ledger
        self._subscribers = {c.name: c for c in plan.clients if isinstance(c, ConsumerSpec) and c.role == "subscriber"}
        self._expected = dict.fromkeys(self._subscribers, 0)
        self._missed = dict.fromkeys(self._subscribers, 0)

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    @property
    def missed(self) -> int:
        return sum(self._missed.values())

    def published(self, exchange: str, routing_key: str) -> None:
        found = self._plan.topology.exchange(exchange)
        if found is None:
            return
        topology = self._ledger.topology
        for name, spec in self._subscribers.items():
            bindings = [b for b in spec.own_bindings if b.source == exchange]
            if any(binding_matches(found.type, b, routing_key, {}) for b in bindings):
                self._expected[name] += 1
                if topology.queue(spec.queue) is None:
                    self._missed[name] += 1

    def checks(self) -> tuple[SubscriberCheck, ...]:
        return tuple(
            SubscriberCheck(
                name,
                tuple(b.routing_key for b in spec.own_bindings),
                self._expected[name],
                self._ledger.acked_in.get(spec.queue, 0),
                self._missed[name],
                self._ledger.discarded_in.get(spec.queue, 0),
            )
            for name, spec in self._subscribers.items()
        )
