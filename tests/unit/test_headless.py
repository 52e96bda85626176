"""The domain and I/O layers run without the TUI: importing them loads no Textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import deadline

HEADLESS = [
    "amqp_lab.config",
    "amqp_lab.masking",
    "amqp_lab.broker.connection",
    "amqp_lab.broker.management",
    "amqp_lab.broker.poller",
    "amqp_lab.broker.probe",
    "amqp_lab.scenario.files",
    "amqp_lab.scenario.patterns",
    "amqp_lab.scenario.routing",
    "amqp_lab.engine.run",
    "amqp_lab.engine.cleanup",
    "amqp_lab.engine.report",
    "amqp_lab.headless",
]


@pytest.mark.parametrize("module", HEADLESS)
def test_module_imports_without_textual(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=deadline(60), check=True
    )
    assert result.stdout.strip() == "[]"
