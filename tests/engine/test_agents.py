"""Load from several machines: two `amqp-lab agent` processes take a run's clients, coordinated through the broker,
and the run's ledger and screens cover both as one run; an agent that vanishes is shown lost, with its share."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load

from tests.conftest import deadline, wait_for
from tests.engine.conftest import nothing_left


@pytest.fixture
def agents(rabbit: Any, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two agent processes on this machine, waiting on the broker; killed at the end if still there."""
    started = []
    for name in ("north", "south"):
        log = (tmp_path / f"{name}.log").open("wb")
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "amqp_lab", "agent", "--name", name, "--url", rabbit.amqp_url],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "AMQP_URL": ""},
            )
        )
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


async def run_with_agents(settings: Settings, *overrides: str, during: Any = None) -> tuple[Run, RunSnapshot]:
    scenario = load("workers", ["duration=4s", "workers.producers=2", "workers.rate=25", *overrides])
    run = Run(scenario, replace(settings, agents=2))
    seen: list[RunSnapshot] = []
    run.add_listener(seen.append)
    execution = asyncio.create_task(run.execute())
    if during is not None:
        await during(seen)
    final = await asyncio.wait_for(execution, deadline(90))
    assert final.state == "finished"
    assert run.leftovers == [] and await nothing_left(settings, run.run_id) == []
    return run, final


async def test_two_agents_run_the_clients_and_the_ledger_covers_both(settings: Settings, agents: list[Any]) -> None:
    _, final = await run_with_agents(settings)
    assert sorted(a.name for a in final.agents) == ["north", "south"]
    assert all(a.state == "done" and a.sent > 0 and a.received > 0 for a in final.agents)
    assert {c.name for c in final.clients} == {"producer-1", "producer-2", "worker-1", "worker-2", "worker-3"}
    assert all(c.detail.startswith("on agent ") for c in final.clients)
    assert final.ledger.published == sum(a.sent for a in final.agents) > 100
    assert final.ledger.acked + final.ledger.still_queued == final.ledger.published  # one ledger over both
    assert final.ledger.lost == 0 and final.ledger.acked > 100
    assert final.ledger.duplicates == 0
    assert final.latency_total["delivery"].count == final.ledger.delivered  # every agent's samples


async def test_an_agent_that_vanishes_is_shown_lost_with_its_share(settings: Settings, agents: list[Any]) -> None:
    async def kill_south(seen: list[RunSnapshot]) -> None:
        await wait_for(lambda: bool(seen) and seen[-1].ledger.acked > 20, what="work flowing on both agents")
        agents[1].kill()
        await wait_for(
            lambda: any(a.name == "south" and a.state == "lost" for a in seen[-1].agents), what="south shown lost"
        )
        south = next(a for a in seen[-1].agents if a.name == "south")
        assert all(c.state == "lost" for c in seen[-1].clients if c.name in south.clients)

    _, final = await run_with_agents(settings, "duration=12s", during=kill_south)
    north, south = sorted(final.agents, key=lambda a: a.name)
    assert (north.state, south.state) == ("done", "lost")
    assert south.sent > 0  # its share until it vanished is reported, not dropped
    assert any("agent south lost" in e.text for e in final.events)
