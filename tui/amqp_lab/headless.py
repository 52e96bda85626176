"""`amqp-lab run`: a scenario without the TUI. Live progress on a terminal, plain lines otherwise, a summary."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from amqp_lab.config import Settings
from amqp_lab.engine.recording import Recorder
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.report import backlog, build_report, expectations, undelivered
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.figures import OUTAGE_COUNTS, pattern_counts
from amqp_lab.scenario.model import Scenario
from amqp_lab.scenario.patterns import run_prefix


def progress_line(s: RunSnapshot) -> str:
    ledger = s.ledger
    counters = ", ".join(f"{k} {s.counters.get(k, 0)}" for k in pattern_counts(s.pattern) if s.counters.get(k))
    state = s.state if s.outage is None else f"RECONNECTING (broker gone {s.outage:.0f} s)"
    return (
        f"{s.elapsed:5.1f}s {state:<8} published {ledger.published} ({s.rates['published']:.0f}/s)  "
        f"delivered {ledger.delivered} ({s.rates['delivered']:.0f}/s)  acked {ledger.acked}  "
        f"outstanding {ledger.outstanding}" + (f"  | {counters}" if counters else "")
    )


def live_view(s: RunSnapshot) -> Group:
    done = min(s.elapsed / s.duration, 1.0) if s.duration else 0.0
    bar = "█" * int(done * 30) + "░" * (30 - int(done * 30))
    head = Text.assemble((f"{s.title} ", "bold"), f"run {s.run_id}  {bar} {s.elapsed:4.1f}/{s.duration:g} s  ", s.state)
    clients = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("client", "role", "state", "sent", "received", "rate/s", "unacked"):
        clients.add_column(column, justify="right" if column in ("sent", "received", "rate/s", "unacked") else "left")
    for c in s.clients:
        clients.add_row(c.name, c.role, c.state, str(c.sent), str(c.received), f"{c.rate:.0f}", str(c.unacked))
    queues = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("queue", "ready", "unacked", "consumers"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for q in s.queues:
        queues.add_row(q.name.removeprefix(run_prefix(s.run_id)), str(q.ready), str(q.unacked), str(q.consumers))
    events = [Text(f"{e.at:6.1f}s {e.client}: {e.text}", overflow="ellipsis", no_wrap=True) for e in s.events[-5:]]
    return Group(head, Text(progress_line(s), overflow="fold"), clients, queues, *events)


def summary(scenario: Scenario, s: RunSnapshot, run: Run) -> Group:
    figures = Table(title="ledger", title_justify="left", box=None, header_style="bold")
    figures.add_column("figure")
    figures.add_column("count", justify="right")
    for name, value in s.ledger.as_dict().items():
        if value or name in ("published", "delivered", "acked", "lost"):
            style = "bold red" if name == "lost" and value else ""
            figures.add_row(name.replace("_", " "), Text(str(value), style=style))
    for name in (*pattern_counts(s.pattern), *OUTAGE_COUNTS):
        if name in s.counters:
            figures.add_row(name.replace("_", " "), str(s.counters[name]))
    latency = Table(title="latency (ms)", title_justify="left", box=None, header_style="bold")
    for column in ("measure", "count", "p50", "p95", "p99", "max"):
        latency.add_column(column, justify="left" if column == "measure" else "right")
    for name, p in s.latency_total.items():
        latency.add_row(name, str(p.count), f"{p.p50:.1f}", f"{p.p95:.1f}", f"{p.p99:.1f}", f"{p.max:.1f}")
    parts: list[RenderableType] = [figures, latency]
    if s.subscribers:
        check = Table(title="expected deliveries (topic rules)", title_justify="left", box=None, header_style="bold")
        for column in ("subscriber", "patterns", "expected", "received", "missed", "discarded"):
            check.add_column(column, justify="left" if column in ("subscriber", "patterns") else "right")
        for sub in s.subscribers:
            figures_of = (sub.expected, sub.received, sub.missed, sub.discarded)
            check.add_row(sub.name, " ".join(sub.patterns), *(f"{n:,}" for n in figures_of))
        parts.append(check)
    for e in expectations(scenario, s):
        mark = Text("ok  ", "green") if e.met else Text("FAIL", "bold red")
        parts.append(Text.assemble(mark, f" {e.counter} {e.actual} (at most {e.most})"))
    unseen = undelivered(scenario, s)
    if unseen is not None:
        parts.append(Text(str(unseen["text"]), style="yellow"))
    left = backlog(s, run.leftovers, run.cleanup_error)
    if left is not None:
        parts.append(Text(str(left["text"]), style="yellow"))
    if run.cleanup_error:
        parts.append(
            Text(
                f"NOT CLEANED UP: {run.cleanup_error}. May be left on the broker: {', '.join(run.leftovers)}. "
                "Run amqp-lab cleanup once the broker is back",
                style="bold red",
            )
        )
    elif run.leftovers:
        parts.append(Text(f"left on the broker: {', '.join(run.leftovers)}", style="bold red"))
    else:
        parts.append(Text(f"cleaned up: nothing of run {s.run_id} is left on the broker", style="green"))
    return Group(*parts)


async def run_headless(
    scenario: Scenario,
    settings: Settings,
    console: Console,
    record: Path | None = None,
    listeners: Sequence[Callable[[RunSnapshot], None]] = (),
) -> dict[str, Any]:
    """Run with a live display, recorded to `record` if given, each snapshot handed to `listeners` too; the report
    as a document (its "passed" decides the exit code)."""
    run = Run(scenario, settings)
    for listener in listeners:
        run.add_listener(listener)
    recorder = Recorder(record, scenario, settings.primary.display()) if record is not None else None
    try:
        if recorder is not None:
            run.add_listener(recorder.add)
        stop = asyncio.Event()
        final = await _execute(run, scenario, console, stop)
        console.print(summary(scenario, final, run))
        report = build_report(scenario, final, settings.primary.display(), run.leftovers, run.cleanup_error)
        document = {**report, "interrupted": stop.is_set()}
        if recorder is not None:
            recorder.finish(RunEnded(final, document, tuple(run.leftovers), None))
        return document
    finally:
        if recorder is not None:
            recorder.close()  # a run that failed to start leaves a recording that says it stops early


async def _execute(run: Run, scenario: Scenario, console: Console, stop: asyncio.Event) -> RunSnapshot:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    # A run stopped by a signal still drains, cleans up and reports; the report says it was interrupted.
    title = f"{scenario.title}: {scenario.description}" if scenario.description else scenario.title
    console.print(Text(title, style="bold"), soft_wrap=True)
    for note in run.plan.notes:
        console.print(Text(f"  {note}"), soft_wrap=True)
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            run.add_listener(lambda s: live.update(live_view(s)))
            return await run.execute(stop=stop)
    last_line = [0.0]

    def plain(s: RunSnapshot) -> None:
        now = time.monotonic()
        if now - last_line[0] >= 1.0:
            last_line[0] = now
            console.print(progress_line(s), soft_wrap=True, highlight=False)

    run.add_listener(plain)
    return await run.execute(stop=stop)
