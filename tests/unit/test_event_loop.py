"""Headless runs and agents take uvloop where it is installed, asyncio's own loop where it is not or where
AMQP_LAB_LOOP=asyncio asks for it; a loop that cannot be had is said, never a traceback. What the process loaded
before stays out of the collector's full passes while the loop runs."""

from __future__ import annotations

import asyncio
import gc
import os
import sys

import pytest
from amqp_lab import event_loop
from amqp_lab.cli import main


def loop_name(monkeypatch: pytest.MonkeyPatch, wanted: str) -> str:
    monkeypatch.setenv("AMQP_LAB_LOOP", wanted)

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    return event_loop.run(which())


def test_asyncio_is_taken_when_asked_or_when_uvloop_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loop_name(monkeypatch, "asyncio") == "asyncio"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # not installed
    assert loop_name(monkeypatch, "") == "asyncio"


def test_uvloop_is_taken_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loop_name(monkeypatch, "") == "uvloop"


@pytest.mark.parametrize(
    ("wanted", "missing", "message"),
    [
        ("trio", False, r"AMQP_LAB_LOOP must be uvloop or asyncio, not 'trio'"),
        ("uvloop", True, r"uvloop is not installed: pip install 'amqp-lab\[fast\]'"),
    ],
)
def test_a_loop_that_cannot_be_had_is_said(
    monkeypatch: pytest.MonkeyPatch, wanted: str, missing: bool, message: str
) -> None:
    if missing:
        monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(event_loop.LoopChoiceError, match=message):
        loop_name(monkeypatch, wanted)


def test_the_command_says_a_bad_loop_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMQP_LAB_LOOP", "trio")
    monkeypatch.setenv("AMQP_LAB_CONFIG", os.devnull)
    assert main(["run", "workers"]) == 2
    said = capsys.readouterr()
    assert "AMQP_LAB_LOOP must be uvloop or asyncio, not 'trio'" in said.err and "Traceback" not in said.err


def test_a_full_collection_during_a_run_walks_only_what_the_run_made() -> None:
    """What the process loaded before (the libraries) is out of the collector's full passes while the run goes: a
    full pass over all of it stopped every client of a run for 100 ms and more, which the run measured as latency.
    Once the run is over the collector has it all again: nothing it holds is kept from ever being freed."""
    walked_before = len(gc.get_objects())

    async def walked_now() -> int:
        return len(gc.get_objects())

    walked_during = event_loop.run(walked_now())
    assert walked_during < walked_before / 4, (walked_during, walked_before)
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects()) >= walked_before * 0.9
