"""`amqp-lab run` as CI uses it: a JSON report, exit codes, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rabbitmq_node import PrivateNode

from tests.conftest import deadline

pytestmark = pytest.mark.embedded


def amqp_lab(node: PrivateNode, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMQP_URL": node.amqp_url, "AMQP_LAB_MANAGEMENT_URL": node.management_url}
    return subprocess.run(
        [sys.executable, "-m", "amqp_lab", *args],
        capture_output=True,
        text=True,
        timeout=deadline(120),
        env=env,
        check=False,
    )


def test_run_writes_a_report_and_exits_0(rabbit: PrivateNode, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = amqp_lab(rabbit, "run", "workers", "--duration", "1s", "--set", "workers.rate=30", "--json", str(report))
    assert result.returncode == 0, result.stderr
    assert "cleaned up: nothing of run" in result.stdout
    document = json.loads(report.read_text())
    assert document["passed"] is True
    assert document["ledger"]["lost"] == 0
    assert document["ledger"]["acked"] == document["ledger"]["published"] > 0
    assert document["scenario"]["pattern"] == "workers"
    assert document["scenario"]["workers"]["rate"] == 30
    assert document["left_on_broker"] == []
    assert {c["role"] for c in document["clients"]} == {"producer", "worker"}
    assert document["latency_ms"]["delivery"]["count"] == document["ledger"]["delivered"]
    # The summary's ledger gives the report's figures (and the run screen's panel, tests/ui/test_live_run.py).
    shown = dict(re.findall(r"^ ?([a-z][a-z ]*?)\s{2,}(\d+)\s*$", result.stdout, re.MULTILINE))
    for name, value in document["ledger"].items():
        if value:
            assert shown.get(name.replace("_", " ")) == str(value), (name, value, shown)


def test_a_backlog_left_at_the_end_is_told_and_what_cleanup_did_with_it(rabbit: PrivateNode, tmp_path: Path) -> None:
    """One worker taking 0.5 s a task, 40 tasks a second for 2 s: most are still queued when the run ends, and
    the cleanup deletes them with the queue. Counting them only in the ledger read as if nothing had been left."""
    report = tmp_path / "report.json"
    settings = ("workers.workers=1", "workers.prefetch=1", "workers.processing=0.5s", "workers.rate=40")
    result = amqp_lab(
        rabbit, "run", "workers", "--duration", "2s", *(f"--set={s}" for s in settings), "--json", str(report)
    )
    document = json.loads(report.read_text())
    queued = document["ledger"]["still_queued"]
    assert queued > 40, document["ledger"]
    assert document["backlog"] == {
        "still_queued": queued,
        "fate": "deleted by the cleanup with the run's queues",
        "text": f"{queued:,} still queued at the end: deleted by the cleanup with the run's queues",
        "short": f"{queued:,} still queued: deleted",
    }
    assert document["backlog"]["text"] in result.stdout
    # The depths are the last sample before the cleanup, and the report says when it was taken.
    assert 0 < document["queues_sampled_at_s"] <= document["elapsed_s"]
    assert {q["name"].rsplit(".", 1)[-1] for q in document["queues"]} == {"tasks"}


async def test_ctrl_c_cleans_up_reports_and_exits_130(rabbit: PrivateNode, tmp_path: Path) -> None:
    """Stopped early, a run still drains, cleans up and writes its report, and says it was interrupted: exit 0
    would tell a CI script the run went as planned."""
    report = tmp_path / "report.json"
    env = {**os.environ, "AMQP_URL": rabbit.amqp_url, "AMQP_LAB_MANAGEMENT_URL": rabbit.management_url}
    command = [sys.executable, "-m", "amqp_lab", "run", "workers", "--duration", "5m", "--json", str(report)]
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), deadline(60))
        assert line, f"the run ended before it was running (exit {await process.wait()})"
        if b"running" in line:
            break
    process.send_signal(signal.SIGINT)
    output, _ = await asyncio.wait_for(process.communicate(), deadline(60))
    assert process.returncode == 130, output.decode()
    document = json.loads(report.read_text())
    assert document["interrupted"] is True and document["left_on_broker"] == []
    assert document["ledger"]["published"] > 0


def test_a_failed_expectation_exits_1(rabbit: PrivateNode, tmp_path: Path) -> None:
    result = amqp_lab(
        rabbit, "run", "rpc", "--duration", "1s", "--set", "rpc.unroutable=1", "--set", "expect.returns=0"
    )
    assert result.returncode == 1
    assert "FAIL returns" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nonsense"], "no such scenario file, and not a preset"),
        (["run", "rpc", "--set", "rpc.handlers=x"], "rpc.handlers (from the command line)"),
        (["run", "rpc", "--duration", "soon"], "not a duration"),
        (["run", "rpc", "--duration", "0"], "duration (from the command line): Input should be greater than 0"),
        (["run", "rpc", "--json", "/no/such/folder/r.json"], "does not exist"),
    ],
)
def test_bad_input_exits_2_before_touching_the_broker(tmp_path: Path, args: list[str], message: str) -> None:
    env = {**os.environ, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}  # nothing listens: must not be needed
    result = subprocess.run(
        [sys.executable, "-m", "amqp_lab", *args],
        capture_output=True,
        text=True,
        timeout=deadline(60),
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_broker_exits_2_with_the_reason() -> None:
    env = {**os.environ, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
    result = subprocess.run(
        [sys.executable, "-m", "amqp_lab", "run", "rpc"], capture_output=True, text=True, timeout=deadline(60), env=env,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "nothing listens at 127.0.0.1:1" in result.stderr


def test_events_no_subscriber_got_are_told_and_can_fail_the_run(rabbit: PrivateNode, tmp_path: Path) -> None:
    """Not reliable pub-sub: a slowed subscriber crashes with a backlog (its exclusive queue goes, and what it held:
    discarded) and misses what is published while it is away. Neither is lost, the broker did as told; the run
    fails on what [expect] holds (discarded) and its summary and report tell the rest (missed)."""
    scenario = tmp_path / "away.toml"
    scenario.write_text(
        'preset = "pub-sub"\nduration = 5\n[pub-sub]\nreliable = false\n'
        '[[schedule]]\nat = 0.5\nclient = "orders"\naction = "slow"\nvalue = 400\n'
        '[[schedule]]\nat = 2\nclient = "orders"\naction = "crash"\nfor = 1.5\n'
        "[expect]\nlost = 0\ndiscarded = 0\n"
    )
    report = tmp_path / "report.json"
    result = amqp_lab(rabbit, "run", str(scenario), "--json", str(report))
    document = json.loads(report.read_text())
    assert result.returncode == 1, result.stdout + result.stderr
    discarded, missed = document["ledger"]["discarded"], document["counters"]["missed"]
    assert discarded > 0 and missed > 0, document["ledger"]
    assert f"FAIL discarded {discarded} (at most 0)" in result.stdout
    assert document["undelivered"]["missed"] == missed and "discarded" not in document["undelivered"]
    assert f"{missed} reached no consumer, not counted as lost: missed {missed}" in " ".join(result.stdout.split())
    for sub in document["subscribers"]:  # every event a subscriber's patterns select is accounted for
        assert sub["expected"] == sub["received"] + sub["missed"] + sub["discarded"], sub
    orders = next(sub for sub in document["subscribers"] if sub["name"] == "orders")
    assert orders["discarded"] == discarded and orders["missed"] == missed
