"""What the live screen remembers between snapshots: series for the trends, every event seen, stalled consumers."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from amqp_lab.engine.events import Event
from amqp_lab.engine.snapshot import RunSnapshot

POINTS = 120  # one a second: the last two minutes
STALL_AFTER = 3.0  # seconds a consumer holds unacked messages without taking a new one
EVENTS_KEPT = 2000
SENDERS = ("requester", "submitter", "publisher", "producer")  # their unacked are requests in flight, not held work
LATENCY_OF = {"rpc": "rpc", "map-reduce": "job"}  # the latency a pattern is judged by; others: delivery


def main_latency(pattern: str) -> str:
    return LATENCY_OF.get(pattern, "delivery")


@dataclass
class Series:
    """One point a second; None where that second had no sample (no delivery to time, say): not a zero."""

    points: deque[float | None] = field(default_factory=lambda: deque(maxlen=POINTS))


class RunHistory:
    """Fed every snapshot the screen renders; `sample()` once a second appends to the series."""

    def __init__(self) -> None:
        self.series: dict[str, Series] = {}
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self.peak_depth = 10
        self._last_seq = 0
        self._progress: dict[str, tuple[int, float]] = {}  # consumer -> (received, elapsed when it last grew)
        self.stalled: set[str] = set()

    def add(self, snapshot: RunSnapshot) -> bool:
        """Take a snapshot in; True when it brought events not seen before."""
        fresh = self.add_events(snapshot.events)
        for queue in snapshot.queues:
            self.peak_depth = max(self.peak_depth, queue.ready + queue.unacked)
        self._watch_consumers(snapshot)
        return fresh

    def add_events(self, events: Iterable[Event]) -> bool:
        """Keep the events newer than any kept (in seq order); True when there were some."""
        fresh = [e for e in events if e.seq > self._last_seq]
        if fresh:
            self.events.extend(fresh)
            self._last_seq = fresh[-1].seq
        return bool(fresh)

    def _watch_consumers(self, snapshot: RunSnapshot) -> None:
        """Hung is what a user sees: unacked held, nothing new taken, for a few seconds."""
        now = snapshot.elapsed
        stalled = set()
        for client in snapshot.clients:
            if client.role in SENDERS:
                continue
            seen = self._progress.get(client.name)
            if seen is None or client.received != seen[0]:
                self._progress[client.name] = (client.received, now)
            elif client.unacked and client.state != "stopped" and now - seen[1] >= STALL_AFTER:
                stalled.add(client.name)
        self.stalled = stalled

    def sample(self, snapshot: RunSnapshot) -> None:
        self._append("published/s", snapshot.rates.get("published", 0.0))
        self._append("acked/s", snapshot.rates.get("acked", 0.0))
        latency = snapshot.latency.get(main_latency(snapshot.pattern))
        if latency is not None:
            sampled = latency.count > 0  # a second with nothing timed has no percentile, not a perfect one
            self._append("p50 ms", latency.p50 if sampled else None)
            self._append("p95 ms", latency.p95 if sampled else None)
            self._append("p99 ms", latency.p99 if sampled else None)
        for queue in snapshot.queues:
            self._append(f"queue {queue.name}", queue.ready + queue.unacked)

    def _append(self, name: str, value: float | None) -> None:
        self.series.setdefault(name, Series()).points.append(value)
