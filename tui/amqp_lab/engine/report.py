"""The end of a run in figures: expectations checked, and the JSON report."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from amqp_lab import __version__
from amqp_lab.engine.events import PROBLEM_KINDS
from amqp_lab.engine.ledger import MEANINGS
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.model import Scenario


@dataclass(frozen=True)
class Expectation:
    counter: str
    most: int
    actual: int

    @property
    def met(self) -> bool:
        return self.actual <= self.most


# Messages that reached no consumer without being lost: the broker did what the settings asked (a non-durable
# subscriber's queue goes with it). Each is expectable; one no [expect] holds is still told in the summary.
UNDELIVERED = {
    "missed": "routed nowhere: its subscriber was away, and its queue with it",
    "discarded": MEANINGS["discarded"],
    "publishes_lost": "published without confirms when the connection dropped: never known to arrive",
}


def counter_value(snapshot: RunSnapshot, name: str) -> int:
    if hasattr(snapshot.ledger, name):
        return int(getattr(snapshot.ledger, name))
    return int(snapshot.counters.get(name, 0))


def expectations(scenario: Scenario, snapshot: RunSnapshot) -> list[Expectation]:
    return [Expectation(name, most, counter_value(snapshot, name)) for name, most in scenario.expect.items()]


def backlog(snapshot: RunSnapshot, leftovers: list[str], cleanup_error: str | None) -> dict[str, Any] | None:
    """Messages still queued when the run ended, and what became of them: the run's queues, and what they held,
    go with the cleanup. None when nothing was left queued."""
    count = snapshot.ledger.still_queued
    if not count:
        return None
    if cleanup_error:
        fate, short = "may be left on the broker: the cleanup could not run", "may be left"
    elif leftovers:
        fate, short = "left on the broker with the run's queues", "left"
    else:
        fate, short = "deleted by the cleanup with the run's queues", "deleted"
    text = f"{count:,} still queued at the end: {fate}"
    return {"still_queued": count, "fate": fate, "text": text, "short": f"{count:,} still queued: {short}"}


def undelivered(scenario: Scenario, snapshot: RunSnapshot) -> dict[str, Any] | None:
    """Messages that reached no consumer, by design of the settings, that no expectation holds: a run passes with
    them, so the summary says it, and how to make the run fail on them. None when there were none."""
    counts = {name: counter_value(snapshot, name) for name in UNDELIVERED if name not in scenario.expect}
    counts = {name: count for name, count in counts.items() if count}
    if not counts:
        return None
    parts = ", ".join(f"{name.replace('_', ' ')} {count:,} ({UNDELIVERED[name]})" for name, count in counts.items())
    hint = " and ".join(f"{name} = 0" for name in counts)
    text = f"{sum(counts.values()):,} reached no consumer, not counted as lost: {parts}. [expect] {hint} fails the run"
    return {**counts, "text": text}


def resolved(scenario: Scenario) -> dict[str, Any]:
    """The scenario as run: settings left unset to follow another are given the value they took."""
    document = scenario.model_dump(mode="json", by_alias=True)
    mapping = scenario.map_reduce
    document["map-reduce"].update(persistent=mapping.resolved_persistent, publish_mode=mapping.resolved_publish_mode)
    return document


def left_out(snapshot: RunSnapshot) -> dict[str, int]:
    """Events logged but not in the report, by kind: only per-message kinds (timeouts, returns, ...) are thinned."""
    kept = Counter(e.kind for e in snapshot.events)
    return {kind: count - kept[kind] for kind, count in sorted(snapshot.event_counts.items()) if count > kept[kind]}


def build_report(
    scenario: Scenario, snapshot: RunSnapshot, broker: str, leftovers: list[str], cleanup_error: str | None = None
) -> dict[str, Any]:
    """The report; `cleanup_error` says why the run could not clean up (then `leftovers` is what may be left)."""
    checks = expectations(scenario, snapshot)
    return {
        "amqp_lab": __version__,
        "run_id": snapshot.run_id,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "broker": broker,
        "scenario": resolved(scenario),
        "elapsed_s": round(snapshot.elapsed, 3),
        "ledger": snapshot.ledger.as_dict(),
        "counters": dict(snapshot.counters),
        "latency_ms": {name: p.as_dict() for name, p in snapshot.latency_total.items()},
        "clients": [asdict(c) for c in snapshot.clients],
        "queues": [asdict(q) for q in snapshot.queues],  # as last sampled, before the cleanup deleted them
        "queues_sampled_at_s": None if snapshot.depths_sampled_at is None else round(snapshot.depths_sampled_at, 3),
        "nodes": [asdict(n) for n in snapshot.nodes],
        "agents": [asdict(a) for a in snapshot.agents],
        "subscribers": [asdict(s) for s in snapshot.subscribers],
        "timeouts": [asdict(e) for e in snapshot.events if e.kind in PROBLEM_KINDS],
        "events": [asdict(e) for e in snapshot.events],
        "event_counts": dict(snapshot.event_counts),
        "events_left_out": left_out(snapshot),
        "expectations": [{**asdict(c), "met": c.met} for c in checks],
        "backlog": backlog(snapshot, leftovers, cleanup_error),
        "undelivered": undelivered(scenario, snapshot),
        "left_on_broker": leftovers,
        "cleanup_error": cleanup_error,
        "passed": all(c.met for c in checks) and not leftovers,
    }
