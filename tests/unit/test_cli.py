"""The command line: help that teaches, and bad input that exits 2 with a message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from amqp_lab import __version__

from tests.conftest import deadline


def amqp_lab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AMQP_", "AMQP_LAB_"))}
    environment["AMQP_LAB_CONFIG"] = os.devnull
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "amqp_lab", *args],
        capture_output=True,
        text=True,
        timeout=deadline(60),
        env=environment,
        check=False,
    )


def test_version() -> None:
    result = amqp_lab("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"amqp-lab {__version__}")


def test_help_teaches_commands_environment_and_examples() -> None:
    result = amqp_lab("--help")
    assert result.returncode == 0
    for needle in ("check", "AMQP_URL", "AMQP_LAB_MANAGEMENT_URL", "--read-only", "[profiles.staging]"):
        assert needle in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["check", "--url", "http://guest:pw@localhost:15672/"], {}, "unknown scheme 'http'"),
        (["check", "--url", "amqp://guest:pw@localhost:70000/"], {}, "port must be a number"),
        (["check", "--url", "amqp://:5672/"], {}, "no host"),
        (["check", "--management-url", "localhost:15672"], {}, "in the management URL"),
        (["check"], {"AMQP_LAB_TIMEOUT": "-1"}, "timeout must be more than 0"),
        (["check", "--profile", "nope"], {}, "no profile 'nope'"),
        (["check", "--bogus"], {}, "unrecognized arguments: --bogus"),
        (["launch"], {}, "invalid choice: 'launch'"),
    ],
)
def test_bad_input_exits_2_with_a_message(args: list[str], env: dict[str, str], message: str) -> None:
    result = amqp_lab(*args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "pw@" not in result.stderr


def test_nothing_listening_fails_check_with_exit_2() -> None:
    result = amqp_lab("check", "--url", "amqp://guest:guest@127.0.0.1:1/", "--management-url", "http://127.0.0.1:1/")
    assert result.returncode == 2
    assert "nothing listens at 127.0.0.1:1" in result.stdout
    assert "nothing answers at http://127.0.0.1:1/" in result.stdout
    assert "Traceback" not in result.stderr
