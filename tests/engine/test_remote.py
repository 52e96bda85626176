"""A run in a child process: snapshots arrive, controls act, stop cleans up and reports."""

from __future__ import annotations

import asyncio

import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.remote import RemoteRun, RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Inject
from amqp_lab.scenario.files import load

from tests.conftest import wait_for
from tests.engine.conftest import client, nothing_left

pytestmark = pytest.mark.embedded


async def test_remote_run_streams_snapshots_takes_controls_and_cleans_up(settings: Settings) -> None:
    snapshots: list[RunSnapshot] = []
    ended: list[RunEnded] = []
    remote = RemoteRun(load("workers", ["workers.processing=2ms"]), settings, snapshots.append, ended.append)
    remote.start()
    await wait_for(lambda: bool(snapshots) and snapshots[-1].ledger.acked > 20, 30, "acked messages in snapshots")
    remote.send(Inject("worker-1", "hang"))
    await wait_for(lambda: client(snapshots[-1], "worker-1").state == "hung", 10, "worker-1 to show hung")
    remote.send(Inject("worker", "add"))
    await wait_for(lambda: any(c.name == "worker-4" for c in snapshots[-1].clients), 10, "a fourth worker")
    run_id = snapshots[-1].run_id
    remote.stop()
    async with asyncio.timeout(30):
        result = await remote.wait()
    assert result is not None and result.error is None
    assert result.snapshot is not None and result.snapshot.state == "finished"
    assert result.report is not None and result.report["passed"] is True
    assert await nothing_left(settings, run_id) == []


async def test_remote_run_reports_a_broker_it_cannot_reach() -> None:
    from amqp_lab.config import build

    settings = build({"amqp_url": "amqp://guest:guest@127.0.0.1:1/", "timeout": 2})
    ended: list[RunEnded] = []
    remote = RemoteRun(load("rpc"), settings, lambda _s: None, ended.append)
    remote.start()
    async with asyncio.timeout(30):
        result = await remote.wait()
    assert result is not None and result.error is not None
    assert "nothing listens at 127.0.0.1:1" in result.error
