"""A child process's tie to the lab that started it: the lab holds the child's standard input, and however the
lab ends, killed included, the child reads the end of it and stops; nothing it started is left running."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading


def stop_when_stdin_closes(stop: asyncio.Event) -> None:
    """Set `stop` (on the running loop) once standard input ends."""
    loop = asyncio.get_running_loop()
    # A daemon thread: blocked on a read, it must not hold up the way out on Ctrl-C.
    threading.Thread(target=_read_until_closed, args=(loop, stop), daemon=True).start()


def _read_until_closed(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    with contextlib.suppress(RuntimeError):  # the loop closed first: nothing left to stop
        loop.call_soon_threadsafe(stop.set)
