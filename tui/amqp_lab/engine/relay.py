"""What an agent's clients tell the ledger and the latency meters, recorded to be replayed on the run's own.

An agent runs part of a run's clients on another machine. The ledger must see every message of
the run, whoever sent or took it, so an agent's clients write to a `LedgerRelay`: it routes as the
ledger does (the clients need to know where a message goes) and records each call as a plain
list, which the agent sends to the run in batches and the run replays, in order, on its ledger.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from amqp_lab.amqp.model import Binding, Queue, Topology
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.ledger import Ledger

ID_SPAN = 10**12  # agent k numbers its messages from k * ID_SPAN: ids stay unique across the run


def plain(headers: Mapping[str, Any] | None) -> Any:
    """Headers as JSON can carry them (x-death's timestamps become text; routing never looks at those)."""
    return None if headers is None else json.loads(json.dumps(dict(headers), default=str))


class LedgerRelay:
    """The Ledger's interface as clients use it, recording calls in `ops` instead of counting."""

    def __init__(self, topology: Topology, id_base: int) -> None:
        self._local = Ledger(topology)  # for routing and the live topology only
        self._next_id = id_base
        self.ops: list[list[Any]] = []

    @property
    def topology(self) -> Topology:
        return self._local.topology

    @property
    def streams(self) -> frozenset[str]:
        return self._local.streams

    def set_topology(self, topology: Topology) -> None:
        known = {q.name for q in self._local.topology.queues}
        for queue in topology.queues:
            if queue.name not in known:
                bindings = [asdict(b) for b in topology.bindings if b.destination == queue.name]
                self.ops.append(["declared", asdict(queue), bindings])
        self._local.set_topology(topology)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def queues_for(self, exchange: str, routing_key: str, headers: Mapping[str, Any] | None = None) -> frozenset[str]:
        return self._local.queues_for(exchange, routing_key, headers)

    def published(
        self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None, mandatory: bool
    ) -> frozenset[str]:
        self.ops.append(["published", msg_id, exchange, routing_key, plain(headers), mandatory])
        return self.queues_for(exchange, routing_key, headers)

    def resent(
        self,
        msg_id: int,
        exchange: str,
        routing_key: str,
        headers: Mapping[str, Any] | None,
        mandatory: bool,
        before: frozenset[str],
    ) -> frozenset[str]:
        self.ops.append(["resent", msg_id, exchange, routing_key, plain(headers), mandatory, sorted(before)])
        return self.queues_for(exchange, routing_key, headers)

    def confirmed(self) -> None:
        self.ops.append(["confirmed"])

    def nacked(self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        self.ops.append(["nacked", msg_id, exchange, routing_key, plain(headers)])

    def returned(self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        self.ops.append(["returned", msg_id, exchange, routing_key, plain(headers)])

    def refused(self, msg_id: int, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        self.ops.append(["refused", msg_id, exchange, routing_key, plain(headers)])

    def withdrawn(self, msg_id: int, queues: frozenset[str]) -> None:
        self.ops.append(["withdrawn", msg_id, sorted(queues)])

    def delivered(self, msg_id: int, queue: str, redelivered: bool, death: Mapping[str, Any] | None = None) -> None:
        self.ops.append(["delivered", msg_id, queue, redelivered, plain(death)])

    def acked(self, msg_id: int, queue: str) -> None:
        self.ops.append(["acked", msg_id, queue])

    def requeued(self, count: int = 1) -> None:
        self.ops.append(["requeued", count])

    def rejected(self, msg_id: int, queue: str, routing_key: str, headers: Mapping[str, Any] | None) -> None:
        self.ops.append(["rejected", msg_id, queue, routing_key, plain(headers)])

    def queue_gone(self, queue: str) -> None:
        self.ops.append(["queue_gone", queue])

    def take(self) -> list[list[Any]]:
        ops, self.ops = self.ops, []
        return ops


SET_ARGUMENTS = {"resent": 6, "withdrawn": 2}  # the position of an argument that travels as a list of queues


def replay(ctx: RunContext, ops: list[list[Any]]) -> None:
    """Apply an agent's recorded calls to the run's ledger. Anything that is not one of the recorded calls is
    refused: the control exchange is not trusted."""
    for op in ops:
        name, args = op[0], list(op[1:])
        if name == "declared":
            ctx.queue_declared(Queue(**args[0]), tuple(Binding(**b) for b in args[1]))
        elif name == "queue_gone":
            ctx.queue_gone(args[0])
        elif name == "publish_seen":
            if ctx.on_publish is not None:
                ctx.on_publish(str(args[0]), str(args[1]))
        elif name in RECORDED:
            if name in SET_ARGUMENTS:
                args[SET_ARGUMENTS[name] - 1] = frozenset(args[SET_ARGUMENTS[name] - 1])
            getattr(ctx.ledger, name)(*args)
        else:
            raise ValueError(f"an agent sent an unknown ledger operation {name!r}")


RECORDED = frozenset(
    ("published", "resent", "confirmed", "nacked", "returned", "refused", "withdrawn", "delivered", "acked",
     "requeued", "rejected")
)  # fmt: skip
