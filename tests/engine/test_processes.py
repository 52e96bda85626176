"""--processes: a run spreads its clients over agent processes of its own on this machine, so it can use every
core; they serve that run alone, and end with it however it ends (killed included)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.errors import RunError
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load

from tests.conftest import deadline, wait_for
from tests.engine.conftest import nothing_left


@pytest.fixture(autouse=True)
def one_broker_is_enough(rabbit: Any) -> None:
    if rabbit.version != "3.10":
        pytest.skip("the processes are the client's: one broker version is enough")


def alive_for(run_id: str | None) -> list[int]:
    """Processes serving `run_id` (`amqp-lab agent --for-run`; None: any run) that still run, not ended ones
    awaiting a reaper."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # ended while we looked
        serves = b"--for-run" in command and (run_id is None or run_id.encode() in command)
        if serves and state != "Z":
            found.append(int(entry.name))
    return found


async def test_a_run_spreads_its_clients_over_its_own_processes_and_they_end_with_it(settings: Settings) -> None:
    scenario = load("workers", ["duration=3s", "workers.producers=2", "workers.workers=2", "workers.rate=25"])
    run = Run(scenario, replace(settings, processes=2))
    final = await asyncio.wait_for(run.execute(), deadline(90))
    assert final.state == "finished"
    assert [a.name for a in final.agents] == [f"process-1-{run.run_id}", f"process-2-{run.run_id}"]
    assert all(a.state == "done" and a.sent > 0 and a.received > 0 for a in final.agents)
    # Each process got a producer and a worker, in order: the spread has something to share.
    assert [sorted(a.clients) for a in final.agents] == [["producer-1", "worker-1"], ["producer-2", "worker-2"]]
    where = {c.name: c.detail for c in final.clients}
    assert where == {"producer-1": "in process 1", "worker-1": "in process 1", "producer-2": "in process 2",
                     "worker-2": "in process 2"}  # fmt: skip
    ledger = final.ledger
    assert ledger.published == sum(a.sent for a in final.agents) > 50
    assert ledger.lost == 0 and ledger.copies == ledger.accounted
    assert alive_for(run.run_id) == []
    assert await nothing_left(settings, run.run_id) == []


async def test_a_worker_added_beside_the_processes_gets_a_name_and_a_row_of_its_own(settings: Settings) -> None:
    """`a` in the TUI: the new worker runs here, and must not take the name of one the processes run."""
    scenario = load("workers", ["duration=60s", "workers.workers=2", "workers.rate=25"])
    run = Run(scenario, replace(settings, processes=1))
    await run.start()
    try:
        await wait_for(lambda: any(c.received > 0 for c in run.snapshot().clients), what="the processes' workers busy")
        with pytest.raises(RunError) as refused:  # `d`: none here to remove, and the reason is where they run
            await run.inject("worker", "remove")
        assert f"the run's workers run on process-1-{run.run_id}" in str(refused.value)
        await run.inject("worker", "add")
        rows = lambda: [c.name for c in run.snapshot().clients]  # noqa: E731
        await wait_for(lambda: "worker-3" in rows(), what="the added worker's row", explain=lambda: str(rows()))
        assert sorted(rows()) == ["producer-1", "worker-1", "worker-2", "worker-3"]
        where = {c.name: c.detail for c in run.snapshot().clients}
        assert where["worker-1"] == where["worker-2"] == "in process 1" and where["worker-3"] != "in process 1"
        await wait_for(
            lambda: next(c.received for c in run.snapshot().clients if c.name == "worker-3") > 0,
            what="the added worker taking tasks",
        )
        await run.inject("worker", "remove")
        assert sorted(rows()) == ["producer-1", "worker-1", "worker-2"]  # the one added here
    finally:
        await run.stop()


async def test_a_process_that_cannot_serve_fails_the_run_saying_why(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The processes read their settings afresh: a config file that went missing since the lab started stops them.
    monkeypatch.setenv("AMQP_LAB_CONFIG", "/nonexistent/amqp-lab.toml")
    run = Run(load("workers", ["duration=3s"]), replace(settings, processes=2))
    with pytest.raises(RunError) as failure:
        await asyncio.wait_for(run.execute(), deadline(60))
    said = str(failure.value)
    assert "this run's processes could not serve it" in said
    assert f"-{run.run_id} ended (2)" in said and "config file /nonexistent/amqp-lab.toml does not exist" in said
    assert alive_for(run.run_id) == []
    assert await nothing_left(settings, run.run_id) == []


async def test_the_processes_end_when_the_run_is_killed(rabbit: Any, settings: Settings) -> None:
    environment = {**os.environ, "AMQP_URL": rabbit.amqp_url, "AMQP_LAB_MANAGEMENT_URL": rabbit.management_url}
    command = [sys.executable, "-m", "amqp_lab", "run", "workers", "--processes", "2", "--duration", "5m"]
    run = await asyncio.create_subprocess_exec(
        *command, env=environment, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    serving: list[int] = []
    try:

        def started() -> bool:
            serving[:] = [pid for pid in alive_for(None) if parent_of(pid) == run.pid]
            return len(serving) == 2

        await wait_for(started, 60, "the run's two agent processes")
    finally:
        run.send_signal(signal.SIGKILL)
        await asyncio.wait_for(run.wait(), deadline(30))

    def ended() -> bool:
        return not set(serving) & set(alive_for(None))

    await wait_for(ended, 30, "the agent processes to end with the run that started them")
    cleanup = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "amqp_lab", "cleanup", "--yes", env=environment, stdout=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(cleanup.wait(), deadline(120)) == 0


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
