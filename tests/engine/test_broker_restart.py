"""The broker restarts mid-run: every pattern reconnects and resumes, reliable modes lose nothing, others say what
they lost. One restart of the private node serves five runs going at once (a restart costs seconds)."""

from __future__ import annotations

import asyncio

import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.report import build_report
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load
from rabbitmq_node import PrivateNode

from tests.conftest import wait_for
from tests.engine.conftest import nothing_left

RUNS = {
    # reliable: durable queue, persistent tasks, confirms (the defaults)
    "workers": ("workers", "workers.rate=40", "workers.processing=5ms"),
    "map-reduce": ("map-reduce", "map-reduce.policy=wait-for-all", "map-reduce.rate=10", "drain=60s"),
    "pub-sub": ("pub-sub", "pub-sub.rate=10"),  # reliable by default
    # requests are non-persistent by default, as the patterns document suggests
    "rpc": ("rpc", "rpc.rate=10", "rpc.unroutable=0", "rpc.timeout=1s"),
    # fast but fragile: one slow worker lets a backlog of non-persistent tasks build up, which a restart drops
    "workers, non-persistent": (
        "workers", "workers.rate=50", "workers.workers=1", "workers.processing=100ms",
        "workers.persistent=false", "workers.publish_mode=none", "expect.lost=100000",
    ),
}  # fmt: skip


def client_states(run: Run) -> dict[str, str]:
    return {c.name: c.state for c in run.snapshot().clients}


@pytest.mark.timeout(180)
async def test_every_pattern_survives_a_broker_restart(rabbit: PrivateNode, settings: Settings) -> None:
    runs = {name: Run(load(source, ["duration=120", *rest]), settings) for name, (source, *rest) in RUNS.items()}
    await asyncio.gather(*(run.start() for run in runs.values()))
    try:
        await wait_for(lambda: all(run.snapshot().ledger.acked >= 10 for run in runs.values()), timeout=30)
        await asyncio.to_thread(rabbit.stop_app)
        try:
            # What the live screen shows meanwhile: the run reconnecting, for how long, and every client
            # reconnecting (each one as its own connection's close reaches it: later on a busy machine).
            await wait_for(lambda: all(run.snapshot().outage is not None for run in runs.values()), timeout=10)
            await wait_for(
                lambda: all(set(client_states(run).values()) == {"reconnecting"} for run in runs.values()),
                timeout=10,
                what="every client reconnecting",
                explain=lambda: str({name: client_states(run) for name, run in runs.items()}),
            )
            acked_before = {name: run.snapshot().ledger.acked for name, run in runs.items()}
        finally:
            await asyncio.to_thread(rabbit.start_app)  # never leave the broker down for the tests after this one

        def resumed() -> bool:
            return all(
                run.snapshot().outage is None and run.snapshot().ledger.acked >= acked_before[name] + 10
                for name, run in runs.items()
            )

        await wait_for(resumed, timeout=60, what="every run to have the broker back and acks flowing again")
        for run in runs.values():
            assert {c.state for c in run.snapshot().clients} == {"running"}
    finally:
        await asyncio.gather(*(run.stop() for run in runs.values()))

    for name, run in runs.items():
        final = run.last
        assert final is not None
        assert final.counters["broker_outages"] == 1, name
        assert run.leftovers == [], name
        assert await nothing_left(settings, run.run_id) == [], name
        kinds = [(e.kind, e.client) for e in final.events]
        assert ("disconnect", "run") in kinds and ("restart", "run") in kinds, name
        for client in final.clients:
            assert ("restart", client.name) in kinds, (name, client.name)

    for name in ("workers", "map-reduce", "pub-sub"):
        ledger = runs[name].last.ledger  # type: ignore[union-attr]
        # Publishers sent again what the broker had not confirmed; a message that had made it is then delivered
        # twice, and the second copy is counted as a duplicate, not hidden.
        assert ledger.lost == 0, (name, ledger)
        assert ledger.outstanding == 0, (name, ledger)
        assert ledger.acked + ledger.still_queued >= ledger.copies - ledger.returned, (name, ledger)
    assert runs["map-reduce"].last.counters["pending_jobs"] == 0  # type: ignore[union-attr]

    rpc = runs["rpc"].last
    assert rpc is not None
    c = rpc.counters
    # Every request is accounted for: answered, returned, or timed out (those in flight when the broker went away).
    # A reply that came back because its requester was reconnecting is counted apart, its request timed out.
    assert c["requests"] == c["replies"] + c.get("returns", 0) + c.get("timeouts", 0), c

    fragile_run = runs["workers, non-persistent"]
    fragile = fragile_run.last
    assert fragile is not None
    assert fragile.ledger.lost > 0  # the backlog of non-persistent tasks did not survive the restart
    report = build_report(fragile_run.scenario, fragile, "broker", fragile_run.leftovers)
    assert report["ledger"]["lost"] == fragile.ledger.lost
    assert report["counters"]["broker_outages"] == 1
