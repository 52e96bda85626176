"""The event loop runs take (headless, the TUI's run process, agents): uvloop where it is installed
(`pip install 'amqp-lab[fast]'`), which spends less per socket event when a run has many connections, else
asyncio's own. AMQP_LAB_LOOP=asyncio asks for asyncio's own loop even then, to measure both ways."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

ENV_LOOP = "AMQP_LAB_LOOP"
T = TypeVar("T")


class LoopChoiceError(ValueError):
    """AMQP_LAB_LOOP names no loop this lab can run on."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, or None for asyncio's own."""
    wanted = os.environ.get(ENV_LOOP, "").strip().lower()
    if wanted not in ("", "uvloop", "asyncio"):
        raise LoopChoiceError(f"{ENV_LOOP} must be uvloop or asyncio, not {wanted!r}")
    if wanted == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if wanted == "uvloop":
            raise LoopChoiceError(
                f"{ENV_LOOP}=uvloop, but uvloop is not installed: pip install 'amqp-lab[fast]'"
            ) from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on the loop loop_factory() chooses.

    What the process loaded before (the libraries: most of what it keeps) is frozen out of CPython's full garbage
    collections while `main` runs. Each full pass walked all of it, stopping every client of a run for 100 ms and
    more on a 2-core machine, a pause the run then measured as the broker's latency."""
    try:
        factory = loop_factory()
    except LoopChoiceError:
        main.close()  # never started: no warning that it was never awaited
        raise
    gc.freeze()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    finally:
        gc.unfreeze()
