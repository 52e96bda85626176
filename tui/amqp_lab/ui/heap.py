"""Garbage collection that does not hold up a key.

CPython's full collection walks every object the program keeps: once the app is up, a quarter of a million (the
libraries, the screens, their caches). Each full pass stopped the app for 100 to 220 ms on a busy 2-core
machine, every few seconds while keys came: the slowest of the key timings in bench/tui_responsiveness.py. So:

- the app runs the full passes itself, when CPython's own count calls one due, but in a quiet moment: once no key or
  mouse event came for QUIET seconds, or OVERDUE seconds late whatever comes. The young generations, whose passes
  take a millisecond or two, stay CPython's;
- what is alive once the first screen is drawn (the libraries, the first screen), and what outlived a full pass
  since, is frozen out of the passes, which then walk only what came after. Every RECLAIM_EVERY-th pass walks all
  of it again, to free what died once frozen (a closed screen's widgets, which refer to each other).

Both end with the app, which matters where apps come and go in one process (the tests).
"""

from __future__ import annotations

import gc
import time

from textual import events, on
from textual.app import App

FULL_PASS_EVERY = 10  # CPython's own third threshold: a full pass after this many passes over the middle generation
NEVER = 1 << 30  # a third threshold never reached: CPython starts no full pass of its own
QUIET = 2.0  # seconds without input before a due full pass runs: a user reading, not typing
OVERDUE = 30.0  # seconds a due full pass waits at most
CHECK = 0.25  # seconds between looks at whether a full pass is due
RECLAIM_EVERY = 10  # every so many full passes, one over the frozen objects too (see above)


class _FullPasses:
    """CPython's full passes, taken over while any app of the process runs (tests run several, one after another
    and sometimes one inside another): given back, with what was frozen, when the last one ends."""

    def __init__(self) -> None:
        self.holders = 0
        self.thresholds: tuple[int, int, int] = (0, 0, 0)  # CPython's, while taken

    def take(self) -> None:
        if self.holders == 0:
            self.thresholds = young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, NEVER)
        self.holders += 1

    def give_back(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            gc.unfreeze()
            gc.set_threshold(*self.thresholds)


_FULL_PASSES = _FullPasses()


class SteadyHeapApp(App[None]):
    """An app whose full garbage collections skip its start-up objects and wait for a pause in the input."""

    _last_input = 0.0
    _due_since: float | None = None
    _full_passes_run = 0
    _holding = False

    @on(events.Mount)
    def _take_over_full_passes(self) -> None:
        self._holding = True
        _FULL_PASSES.take()
        self.call_after_refresh(gc.freeze)  # the first screen drawn: what is alive now stays
        self.set_interval(CHECK, self._full_pass_if_due)

    @on(events.Unmount)
    def _give_back_full_passes(self) -> None:
        if self._holding:
            self._holding = False
            _FULL_PASSES.give_back()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def _full_pass_if_due(self) -> None:
        now = time.monotonic()
        if gc.get_count()[2] < FULL_PASS_EVERY:
            return
        if self._due_since is None:
            self._due_since = now
        if now - self._last_input >= QUIET or now - self._due_since >= OVERDUE:
            self._due_since = None
            self._full_passes_run += 1
            if self._full_passes_run % RECLAIM_EVERY == 0:
                gc.unfreeze()
            gc.collect()
            gc.freeze()
