"""What leaves the engine: immutable snapshots of a run, about ten a second, never one event per message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from pydantic import TypeAdapter

from amqp_lab.engine.events import Event, EventKind
from amqp_lab.engine.ledger import LedgerCounts
from amqp_lab.engine.metrics import Percentiles
from amqp_lab.engine.placement import NodeState, QueuePlace


@dataclass(frozen=True)
class ClientStats:
    """One simulated client as the run last saw it."""

    name: str
    role: str
    state: str
    sent: int
    received: int
    rate: float  # messages per second, sent or received, whichever the client mostly does
    unacked: int
    detail: str = ""  # a fault's parameter, a reason for FAILED
    received_rate: float = 0.0  # messages received per second (a requester's replies, a submitter's results)


@dataclass(frozen=True)
class QueueDepth:
    """One lab queue: ready from a passive declare (about once a second); unacked as the lab's clients that read it
    hold them (consumers, the reducer), live."""

    name: str
    ready: int
    unacked: int
    consumers: int
    in_rate: float = 0.0  # copies routed to it per second (the ledger's routing, live)
    out_rate: float = 0.0  # acked from it per second
    place: QueuePlace | None = None  # its type and node(s), as the management API last said


@dataclass(frozen=True)
class SubscriberCheck:
    """Pub-sub: events a subscriber's patterns select, against what it got."""

    name: str
    patterns: tuple[str, ...]
    expected: int  # events whose key matches its patterns (RabbitMQ's topic rules)
    received: int  # acked from its queue
    missed: int  # matched while its queue did not exist (a non-durable subscriber that was away)
    discarded: int = 0  # in its exclusive queue when the queue went away with it (a crash, a restart)


@dataclass(frozen=True)
class AgentSummary:
    """An agent running part of the run's clients: its state and its share of the work."""

    name: str
    state: str  # starting, running, done, lost, failed
    clients: tuple[str, ...]
    sent: int
    received: int


@dataclass(frozen=True)
class RunSnapshot:
    run_id: str
    title: str
    pattern: str
    state: str  # starting, running, draining, cleaning, finished, failed
    elapsed: float
    duration: float
    ledger: LedgerCounts
    counters: Mapping[str, int]
    rates: Mapping[str, float]  # published, delivered, acked per second
    latency: Mapping[str, Percentiles]  # the last second
    latency_total: Mapping[str, Percentiles]  # since the start
    clients: tuple[ClientStats, ...]
    queues: tuple[QueueDepth, ...]
    events: tuple[Event, ...]  # newest last: the latest while running; once finished, every one the run kept
    subscribers: tuple[SubscriberCheck, ...] = ()
    notes: tuple[str, ...] = field(default=())
    outage: float | None = None  # seconds since the run lost the broker, while it is reconnecting
    outage_reason: str = ""  # why the last reconnect attempt failed
    nodes: tuple[NodeState, ...] = ()  # the cluster's nodes and their states, as the management API last said
    agents: tuple[AgentSummary, ...] = ()  # with --agents: who runs which clients
    event_counts: Mapping[EventKind, int] = field(default_factory=dict)  # every event logged, by kind
    loop_lag: float = 0.0  # seconds: the worst lateness of the run's 0.1 s timer over the last second
    depths_sampled_at: float | None = None  # elapsed seconds at the queues' last ready count (None: never read)


# Their JSON form, for recordings and watchers. Built on first use: building them costs some 50 ms, which the lab's
# start-up need not pay.
@cache
def snapshot_adapter() -> TypeAdapter[RunSnapshot]:
    return TypeAdapter(RunSnapshot)


@cache
def event_adapter() -> TypeAdapter[Event]:
    return TypeAdapter(Event)
