"""A run's record never drops what matters: under a flood of per-message events (timeouts, returns), the faults,
crashes, outages and errors stay, and what was thinned out is counted by kind in the report."""

from __future__ import annotations

import random

from amqp_lab.amqp.model import Topology
from amqp_lab.config import build
from amqp_lab.engine.context import EVENT_LOG_SIZE, RunContext
from amqp_lab.engine.ledger import Ledger
from amqp_lab.engine.report import build_report
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load

SETTINGS = build({"amqp_url": "amqp://guest:guest@localhost:5672/"})


def flooded() -> RunContext:
    ctx = RunContext(SETTINGS, Ledger(Topology()), random.Random(1))
    ctx.event("info", "run", "started")
    ctx.event("disconnect", "run", "broker connection lost")
    for n in range(10_000):
        ctx.event("timeout", "requester-1", f"request {n} had no reply")
        if n == 5_000:
            ctx.event("crash", "handler-1", "crashed: channel dropped")
    ctx.event("restart", "run", "broker back after 3.0 s")
    return ctx


def test_notable_events_survive_a_flood_of_timeouts() -> None:
    kept = flooded().kept_events()
    kinds = [e.kind for e in kept]
    assert {"info", "disconnect", "crash", "restart"} <= set(kinds)
    assert kinds.count("timeout") == EVENT_LOG_SIZE - 1  # the latest ones, the restart being the newest event
    assert [e.seq for e in kept] == sorted(e.seq for e in kept)


def test_the_report_keeps_every_notable_event_and_counts_what_it_left_out() -> None:
    run = Run(load("rpc"), SETTINGS)
    run.ctx = flooded()
    run.state = "finished"
    report = build_report(run.scenario, run.snapshot(), "broker", [])
    kinds = [e["kind"] for e in report["events"]]
    assert kinds.count("crash") == 1 and "disconnect" in kinds and "restart" in kinds
    assert report["event_counts"]["timeout"] == 10_000
    assert report["events_left_out"] == {"timeout": 10_000 - kinds.count("timeout")}
