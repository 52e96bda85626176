"""Load from several machines: two `amqp-lab agent` processes take a run's clients, coordinated through the broker,
and the run's ledger and screens cover both as one run; an agent that vanishes is shown lost, with its share."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from amqp_lab.config import Settings
from amqp_lab.engine import fleet
from amqp_lab.engine.agent import DISCOVER, declare_control
from amqp_lab.engine.agent_messages import VERSION, Offer, to_run
from amqp_lab.engine.errors import RunError
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


async def test_a_run_and_an_agent_of_another_amqp_lab_version_say_so(
    rabbit: Any, settings: Settings, agents: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Agents of a newer amqp-lab answer a run's discover in their own version; the run says which agent, and
    what to do, instead of waiting for offers it cannot read. The same holds the other way round."""
    monkeypatch.setattr(fleet, "RECRUIT_TIMEOUT", 3.0)
    newer = VERSION + 1
    async with await aio_pika.connect(rabbit.amqp_url) as connection:
        channel = await connection.channel()
        control = await declare_control(channel)
        inbox = await channel.declare_queue("", exclusive=True, auto_delete=True)
        future = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await future.bind(control, DISCOVER)

        async def answer_as_newer(message: AbstractIncomingMessage) -> None:
            asked = json.loads(message.body)
            offer = {"v": newer, "type": "offer", "agent": "future", "run_id": asked["run_id"], "extra": True}
            await channel.default_exchange.publish(aio_pika.Message(json.dumps(offer).encode()), asked["reply_to"])

        await future.consume(answer_as_newer, no_ack=True)
        run = Run(load("workers", ["duration=4s"]), replace(settings, agents=3))  # north and south answer too
        with pytest.raises(RunError, match=f"agent future speaks agent protocol v{newer}, this amqp-lab v{VERSION}"):
            await run.execute()
        assert run.leftovers == [] and await nothing_left(settings, run.run_id) == []

        # The other way round: a newer run's discover gets an offer from each agent, which says why it cannot join.
        discover = {"v": newer, "type": "discover", "run_id": "0f00d1", "reply_to": inbox.name, "extra": True}
        offers: list[Offer] = []

        async def offered(message: AbstractIncomingMessage) -> None:
            said = to_run(message.body)
            if isinstance(said, Offer) and said.run_id == "0f00d1":
                offers.append(said)

        await inbox.consume(offered, no_ack=True)
        asked_at = 0.0

        async def both_answered() -> bool:
            # Asked again each second, as a run asks: on a loaded machine an agent may not be listening yet.
            nonlocal asked_at
            if {o.agent for o in offers} == {"north", "south"}:
                return True
            if time.monotonic() - asked_at >= 1.0:
                asked_at = time.monotonic()
                await control.publish(aio_pika.Message(json.dumps(discover).encode()), DISCOVER)
            return False

        await wait_for(both_answered, what="both agents to answer")
        logs = [(tmp_path / f"{name}.log").read_text() for name in ("north", "south")]
        assert all(f"run 0f00d1 speaks agent protocol v{newer}" in log for log in logs), logs
