"""What every simulated client of a run shares: settings, the ledger, latencies, counters and the event log."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amqp_lab.amqp.model import Binding, Queue
from amqp_lab.config import Settings
from amqp_lab.engine.events import PER_MESSAGE_KINDS, Event, EventKind
from amqp_lab.engine.ledger import Ledger
from amqp_lab.engine.metrics import Latency
from amqp_lab.engine.sinks import Sink, open_sink
from amqp_lab.scenario.figures import Count

EVENT_LOG_SIZE = 500  # the latest events of every kind, for the live screens
NOTABLE_KEPT = 5000  # events not of PER_MESSAGE_KINDS kept for the report; what went beyond is counted


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class RunContext:
    settings: Settings
    ledger: Ledger
    rng: random.Random
    run_id: str = ""  # in the name of each client's connection, as the broker lists it
    started: float = field(default_factory=time.monotonic)
    latency: dict[str, Latency] = field(default_factory=dict)
    counters: Counter[Count] = field(default_factory=Counter)  # by the names of scenario.figures only
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=EVENT_LOG_SIZE))
    notable: list[Event] = field(default_factory=list)  # every event not of PER_MESSAGE_KINDS, up to NOTABLE_KEPT
    event_counts: Counter[EventKind] = field(default_factory=Counter)  # every event logged, by kind
    on_publish: Callable[[str, str], None] | None = None  # (exchange, routing key), for pub-sub's delivery check
    sinks: dict[str, Sink] = field(default_factory=dict)
    events_logged: int = 0
    # Cleared while the run's own connection is lost; set once the broker is back and the topology declared again.
    broker_up: asyncio.Event = field(default_factory=_set_event)
    # Producers hold while a consumer reconnects: consumers come back first, as at the start, so the ledger
    # knows every queue a message can reach before the message is sent.
    consumers_up: asyncio.Event = field(default_factory=_set_event)
    consumers_down: set[str] = field(default_factory=set)

    def sink(self, path: str) -> Sink:
        """One sink per path, shared by the workers that record to it."""
        found = self.sinks.get(path)
        if found is None:
            found = self.sinks[path] = open_sink(path)
        return found

    def close_sinks(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        self.sinks.clear()

    def latency_of(self, name: str) -> Latency:
        found = self.latency.get(name)
        if found is None:
            found = self.latency[name] = Latency()
        return found

    def event(self, kind: EventKind, client: str, text: str) -> None:
        self.events_logged += 1
        self.event_counts[kind] += 1
        event = Event(round(time.monotonic() - self.started, 3), kind, client, text, self.events_logged)
        self.events.append(event)
        if kind not in PER_MESSAGE_KINDS and len(self.notable) < NOTABLE_KEPT:
            self.notable.append(event)

    def kept_events(self) -> tuple[Event, ...]:
        """What a run's record keeps: every notable event, and the latest of the per-message ones, in order."""
        seen = {e.seq for e in self.notable}
        return tuple(sorted([*self.notable, *(e for e in self.events if e.seq not in seen)], key=lambda e: e.seq))

    def consumer_lost(self, name: str) -> None:
        self.consumers_down.add(name)
        self.consumers_up.clear()

    def consumer_back(self, name: str) -> None:
        self.consumers_down.discard(name)
        self.consumers_ready()

    def consumers_ready(self) -> None:
        """Producers may go on, unless the broker or a consumer is still away."""
        if self.broker_up.is_set() and not self.consumers_down:
            self.consumers_up.set()

    def backlog(self, exchange: str, keys: tuple[str, ...], headers: Mapping[str, Any] | None) -> int | None:
        """The fewest copies waiting (queued or unacked) in any queue a publish to `exchange` with one of `keys`
        reaches, as the ledger follows them; None where there is no such queue, or no ledger to ask."""
        queues = frozenset().union(*(self.ledger.queues_for(exchange, key, headers) for key in keys))
        return min((self.ledger.outstanding_in(queue) for queue in queues), default=None)

    def queue_declared(self, queue: Queue, bindings: tuple[Binding, ...] = ()) -> None:
        self.ledger.set_topology(self.ledger.topology.with_queue(queue, bindings))

    def queue_gone(self, name: str) -> None:
        self.ledger.queue_gone(name)
        self.ledger.set_topology(self.ledger.topology.without_queue(name))
