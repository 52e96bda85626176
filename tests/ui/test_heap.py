"""The app's full garbage collections: each one in a pause of the input, walking only what is new since the last,
what died once frozen freed all the same, and the collector as it was once the app ends."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest
from amqp_lab.ui import heap
from amqp_lab.ui.heap import FULL_PASS_EVERY, QUIET, SteadyHeapApp
from textual.app import ComposeResult
from textual.widgets import Static

from tests.conftest import wait_for


class Plain(SteadyHeapApp):
    def compose(self) -> ComposeResult:
        yield Static("steady")


def make_full_pass_due() -> None:
    """What CPython counts to call a full pass due: passes over the middle generation."""
    for _ in range(FULL_PASS_EVERY):
        gc.collect(1)


async def test_a_due_full_pass_waits_for_a_pause_in_the_keys_then_runs() -> None:
    app = Plain()
    quiet_at_full_passes: list[float] = []  # seconds since the last key, at each full pass the app ran

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            quiet_at_full_passes.append(time.monotonic() - app._last_input)

    thresholds = gc.get_threshold()
    gc.callbacks.append(watch)
    try:
        async with app.run_test() as pilot:
            await wait_for(lambda: gc.get_freeze_count() > 0, what="start-up objects frozen once drawn")
            made_since = [[n] for n in range(20_000)]  # what the app made since its first screen, and keeps
            make_full_pass_due()
            typing_until = time.monotonic() + 2 * QUIET
            while time.monotonic() < typing_until:
                await pilot.press("x")  # a key every few milliseconds: no pause for a full pass
            await wait_for(lambda: bool(quiet_at_full_passes), what="the due full pass, once the keys stopped")
            # what outlived it is out of the next: a full pass walks only what came after
            assert len(gc.get_objects()) < len(made_since)
        # Each full pass came in a pause of the keys, none while they came (a machine too busy to press one in
        # QUIET seconds would make a pause too).
        assert min(quiet_at_full_passes) >= QUIET, quiet_at_full_passes
    finally:
        gc.callbacks.remove(watch)
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0, "objects frozen after the app ended: the collector would never free them"


class Cycle:
    """Objects that refer to each other, as a widget and its parent do: only a full pass frees them."""

    def __init__(self) -> None:
        self.me = self


async def test_what_dies_once_frozen_is_freed_by_a_later_full_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "RECLAIM_EVERY", 2)
    app = Plain()
    full_passes: list[float] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full_passes.append(time.monotonic())

    gc.callbacks.append(watch)
    try:
        async with app.run_test():
            await wait_for(lambda: gc.get_freeze_count() > 0, what="start-up objects frozen once drawn")
            kept = Cycle()
            make_full_pass_due()
            await wait_for(lambda: len(full_passes) == 1, what="a full pass that freezes what outlives it")
            freed = weakref.ref(kept)
            del kept
            make_full_pass_due()
            await wait_for(lambda: freed() is None, what="the frozen cycle freed, once nothing refers to it")
    finally:
        gc.callbacks.remove(watch)
