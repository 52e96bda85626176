"""A run whose broker is out of reach when it ends: it still ends, writes its report, says what it could not clean
up and why, exits 3, and `amqp-lab cleanup` finishes the job once the broker is back. The link goes down through
the fault proxy, so the broker itself stays up for the other tests (and for checking what was left)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from amqp_lab.engine.cleanup import find_leftovers, remove
from amqp_lab.engine.report import build_report
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load
from fault_proxy import FaultProxy
from rabbitmq_node import VERSIONS, PrivateNode

from tests.conftest import deadline, settings_for, wait_for
from tests.engine.conftest import lab_objects, nothing_left


@pytest.fixture
async def proxy(rabbit: PrivateNode):  # type: ignore[no-untyped-def]
    if rabbit.version != VERSIONS[0]:
        pytest.skip("the client side is under test here: one broker version is enough")
    proxy = FaultProxy(rabbit.amqp_port)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.mark.timeout(120)
async def test_a_run_ending_while_the_broker_is_gone_reports_what_it_could_not_clean(
    rabbit: PrivateNode, proxy: FaultProxy
) -> None:
    direct = settings_for(rabbit)
    settings = settings_for(rabbit, amqp_url=proxy.url_for(rabbit.amqp_url), heartbeat=1, timeout=2.0)
    run = Run(load("workers", ["duration=120", "workers.rate=40", "workers.processing=5ms"]), settings)
    await run.start()
    await wait_for(lambda: run.snapshot().ledger.acked >= 10, timeout=30, what="acks")
    proxy.down()
    await wait_for(lambda: run.snapshot().outage is not None, timeout=10, what="the outage to be noticed")
    await asyncio.wait_for(run.stop(), deadline(60))

    final = run.last
    assert final is not None and final.state == "finished"
    assert run.cleanup_error is not None and "could not be reached" in run.cleanup_error
    queue, exchange = f"lab.{run.run_id}.tasks", f"lab.{run.run_id}.tasks"
    assert f"queue {queue}" in run.leftovers and f"exchange {exchange}" in run.leftovers
    # Messages still in the queue could not be looked for: unchecked, not lost.
    assert final.ledger.lost == 0
    assert final.ledger.unchecked == final.ledger.outstanding
    assert any(e.kind == "error" and "amqp-lab cleanup" in e.text for e in final.events)
    report = build_report(run.scenario, final, "broker", run.leftovers, run.cleanup_error)
    assert report["cleanup_error"] == run.cleanup_error and not report["passed"]

    # What it said may be left is there; once the broker is reachable, cleanup removes it.
    proxy.heal()
    assert {queue} <= set(await lab_objects(direct, run.run_id))
    leftovers = await find_leftovers(direct)
    assert queue in leftovers.queues and exchange in leftovers.exchanges
    await remove(direct, leftovers)
    assert await nothing_left(direct, run.run_id) == []


@pytest.mark.timeout(120)
async def test_amqp_lab_run_writes_its_report_and_exits_3_when_the_broker_is_gone_at_the_end(
    rabbit: PrivateNode, proxy: FaultProxy, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    environment = {
        **os.environ,
        "AMQP_URL": proxy.url_for(rabbit.amqp_url),
        "AMQP_LAB_MANAGEMENT_URL": rabbit.management_url,
        "AMQP_LAB_HEARTBEAT": "1",
        "AMQP_LAB_TIMEOUT": "2",
    }
    command = [sys.executable, "-m", "amqp_lab", "run", "workers", "--duration", "60s", "--json", str(report)]
    command += ["--set", "workers.rate=40"]
    process = await asyncio.create_subprocess_exec(
        *command, env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        await wait_for(lambda: proxy.passed["down"] > 20_000, timeout=60, what="the run to be under way")
        proxy.down()
        await asyncio.sleep(0)  # the run now goes on reconnecting; SIGINT ends it as Ctrl-C would
        process.send_signal(2)
        output, _ = await asyncio.wait_for(process.communicate(), deadline(90))
    finally:
        if process.returncode is None:
            process.kill()
    text = output.decode()
    assert process.returncode == 3, text
    assert "Traceback" not in text
    assert "NOT CLEANED UP" in text and "amqp-lab cleanup" in text
    document = json.loads(report.read_text())
    assert "could not be reached" in document["cleanup_error"]
    assert any(name.startswith("queue lab.") for name in document["left_on_broker"])
    leftovers = await find_leftovers(settings_for(rabbit))
    run_id = document["run_id"]
    assert f"lab.{run_id}.tasks" in leftovers.queues
    await remove(settings_for(rabbit), leftovers)
