"""A run in a child process, so simulated load never stalls the TUI's event loop.

The child owns the `Run` and its own event loop; it sends immutable snapshots
(about ten a second) and the final report up a pipe, and takes controls down
it. The parent reads the pipe from its event loop without a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from amqp_lab import event_loop
from amqp_lab.config import Settings
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Control, Inject, PauseProducers, ResumeProducers, SetRate, StopRun
from amqp_lab.scenario.model import Scenario

if TYPE_CHECKING:
    from amqp_lab.engine.run import Run

CHILD_NICENESS = 10


@dataclass(frozen=True)
class RunEnded:
    """What the child says last: the final snapshot and report, or why the run could not start."""

    snapshot: RunSnapshot | None
    report: dict[str, Any] | None
    leftovers: tuple[str, ...]
    error: str | None = None


class RemoteRun:
    """Start, control and stop a `Run` living in a child process."""

    def __init__(
        self,
        scenario: Scenario,
        settings: Settings,
        on_snapshot: Callable[[RunSnapshot], None],
        on_end: Callable[[RunEnded], None],
        until_stopped: bool = True,
    ) -> None:
        self.scenario = scenario
        self._on_snapshot = on_snapshot
        self._on_end = on_end
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child, scenario, settings, until_stopped), name="amqp-lab-run", daemon=True
        )
        self._child_end = child
        self.ended: RunEnded | None = None
        self._ended = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> None:
        # A TUI replaces sys.stderr with an object without a file descriptor; multiprocessing
        # hands stderr's descriptor to its helper process, so give it the real one.
        with contextlib.redirect_stderr(sys.__stderr__):
            self._process.start()
        self._child_end.close()
        asyncio.get_running_loop().add_reader(self._pipe.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            said: RunSnapshot | RunEnded = self._pipe.recv()
        except (EOFError, OSError):
            self._finish(RunEnded(None, None, (), "the run's process ended without a word"))
            return
        if isinstance(said, RunSnapshot):
            self._on_snapshot(said)
        else:
            self._finish(said)

    def _finish(self, ended: RunEnded) -> None:
        if self.ended is not None:
            return
        self.ended = ended
        self._ended.set()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._pipe.fileno())
        self._on_end(ended)

    def send(self, control: Control) -> None:
        if self.ended is None:
            with contextlib.suppress(OSError):
                self._pipe.send(control)

    def stop(self) -> None:
        self.send(StopRun())

    async def wait(self) -> RunEnded | None:
        """Until the child has cleaned up and said so (bound it with asyncio.timeout); then it is reaped."""
        await self._ended.wait()
        await asyncio.to_thread(self._process.join, 5)
        if self._process.is_alive():
            self._process.kill()
        return self.ended


def _child(pipe: Connection, scenario: Scenario, settings: Settings, until_stopped: bool) -> None:
    # The parent draws on this terminal: stray library output must not reach it, and Ctrl-C is the parent's.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Load generation yields the CPU to the TUI: on a busy laptop the screen stays responsive.
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    logging.getLogger().addHandler(logging.NullHandler())
    event_loop.run(_serve(pipe, scenario, settings, until_stopped))


async def _serve(pipe: Connection, scenario: Scenario, settings: Settings, until_stopped: bool) -> None:
    from amqp_lab.broker.errors import BrokerError
    from amqp_lab.engine.errors import RunError
    from amqp_lab.engine.report import build_report
    from amqp_lab.engine.run import Run

    try:
        run = Run(scenario, settings)
    except RunError as exc:
        pipe.send(RunEnded(None, None, (), str(exc)))
        return
    run.add_listener(pipe.send)  # each snapshot, then one RunEnded
    commands: asyncio.Queue[Control] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            commands.put_nowait(pipe.recv())
        except (EOFError, OSError):  # the parent is gone: stop and clean up
            loop.remove_reader(pipe.fileno())
            commands.put_nowait(StopRun())

    loop.add_reader(pipe.fileno(), readable)
    try:
        await run.start()
    except (BrokerError, RunError, OSError) as exc:
        await run.stop()
        pipe.send(RunEnded(run.last, None, tuple(run.leftovers), f"the run could not start: {exc}"))
        return
    if not until_stopped:
        loop.call_later(scenario.duration, commands.put_nowait, StopRun())
    while not isinstance(control := await commands.get(), StopRun):
        try:
            await _control(run, control)
        except (RunError, BrokerError, OSError) as exc:
            run.ctx.event(EventKind.ERROR, control.client if isinstance(control, Inject) else "run", str(exc))
    await run.stop()
    assert run.last is not None
    report = build_report(scenario, run.last, settings.primary.display(), run.leftovers, run.cleanup_error)
    with contextlib.suppress(OSError):
        pipe.send(RunEnded(run.last, report, tuple(run.leftovers)))


async def _control(run: Run, control: Control) -> None:
    match control:
        case Inject(client, action, value):
            await run.inject(client, action, value)
        case PauseProducers():
            run.roster.pause_producers()
        case ResumeProducers():
            run.roster.resume_producers()
        case SetRate(target, rate):
            run.roster.set_rate(target, rate)
