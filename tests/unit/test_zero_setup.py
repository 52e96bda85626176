"""On a machine with no broker configured and none on localhost:5672, `amqp-lab run` starts the embedded broker,
says so, runs the scenario on it, and stops it when done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from amqp_lab.embedded.process import answers

from tests.conftest import deadline


def test_run_without_a_broker_uses_the_embedded_one_and_stops_it(tmp_path: Path) -> None:
    if answers(5672) or answers(15672):
        pytest.skip("something listens on localhost:5672 or 15672: the lab would use it, as it should")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_URL", "AMQP_LAB_"))}
    environment |= {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}  # no config file either
    result = subprocess.run(
        [sys.executable, "-m", "amqp_lab", "run", "pub-sub", "--duration", "2s"],
        capture_output=True, text=True, timeout=deadline(120), env=environment, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no broker configured and nothing answers on localhost:5672" in result.stderr
    assert "embedded broker runs on amqp://guest:****@127.0.0.1:5672/" in result.stderr
    assert "cleaned up: nothing of run" in result.stdout
    assert not answers(5672)  # gone with the run
