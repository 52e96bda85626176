#!/usr/bin/env python3
"""Does load make the TUI stutter? The TUI's event-loop lag, idle against a full-speed run, in one run.

On one private RabbitMQ node, the real app (headless driver, 140x40) goes through:
  idle       the overview screen, polling the management API every second
  load       the live run screen on the workers scenario at full speed (rate max,
             processing 0, 3 workers): the run in its child process, the screen
             redrawing four times a second
  typing     the same, while keys are pressed: ↓ ↑ in the clients table, / and Esc
             in the event filter (a focus change restyles the screen and redraws the footer)

Lag is how late a 10 ms timer in the TUI's loop fires. A key press is timed from the key
event reaching the app until the widget shows its effect.

    python3 bench/tui_responsiveness.py [--seconds 10] [--version 4.0]

Targets: load p99 at most 3x idle p99 and under 50 ms; key presses under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node
from amqp_lab.config import build
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable
from textual import events
from textual.widgets import Input

TICK = 0.010
SIZE = (140, 40)


def full_speed(seconds: float) -> list[str]:
    return [f"duration={seconds + 5}", "workers.rate=max", "workers.processing=0ms", "workers.workers=3"]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 2 else max(values, default=0.0)


async def lag_for(seconds: float) -> list[float]:
    """Milliseconds each 10 ms sleep overslept, for `seconds`."""
    lags = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        await asyncio.sleep(TICK)
        lags.append((time.perf_counter() - start - TICK) * 1000)
    return lags


async def key_presses(app: AmqpLabApp, count: int) -> dict[str, list[float]]:
    """Milliseconds from a key event reaching the app (as the terminal driver posts it) until the screen
    shows its effect: ↓/↑ move the selection in the clients table; `/` focuses the event filter, Esc leaves it."""
    times: dict[str, list[float]] = {"select a client (↓ ↑)": [], "event filter (/ Esc)": []}
    table = app.screen.query_one(ClientsTable)
    box = app.screen.query_one("#event-filter", Input)
    for _ in range(count):
        for key, done in (("down", lambda: table.cursor_row == 1), ("up", lambda: table.cursor_row == 0)):
            start = time.perf_counter()
            app.post_message(events.Key(key, None))
            while not done():
                await asyncio.sleep(0)
            times["select a client (↓ ↑)"].append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.1)
        for key, character, focused in (("slash", "/", True), ("escape", None, False)):
            start = time.perf_counter()
            app.post_message(events.Key(key, character))
            while box.has_focus is not focused:
                await asyncio.sleep(0)
            times["event filter (/ Esc)"].append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.1)
    return times


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):
        while not condition():
            await asyncio.sleep(0.1)


async def measure(node: rabbitmq_node.PrivateNode, seconds: float) -> None:
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "refresh": 1, "timeout": 30})
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.snapshot is not None)
        idle = await lag_for(seconds)
        del pilot

        await app.push_screen(LiveRunScreen(load("workers", full_speed(seconds))))
        await until(lambda: app.run_latest is not None and app.run_latest.state == "running")
        loaded = await lag_for(seconds)
        typing, keys = await asyncio.gather(lag_for(seconds / 2), key_presses(app, 8))
        published = app.run_latest.ledger.published if app.run_latest else 0
        elapsed = app.run_latest.elapsed if app.run_latest else 1.0
        await app.end_run()

    rate = published / elapsed
    print(f"RabbitMQ {node.version}, workers at full speed (~{rate:,.0f} msg/s published), {seconds:g} s per phase")
    for name, lags in (("idle", idle), ("full-speed run", loaded), ("full-speed run, typing", typing)):
        print(
            f"  lag {name:<24} p50 {statistics.median(lags):6.2f} ms  p99 {p99(lags):6.2f} ms  max {max(lags):6.1f} ms"
        )
    for name, times in keys.items():
        print(f"  key {name:<24} p50 {statistics.median(times):6.1f} ms  max {max(times):6.1f} ms")
    print(f"  ratio load/idle, lag p99: {p99(loaded) / max(p99(idle), 0.01):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    args = parser.parse_args()
    node = rabbitmq_node.start("amqplab-bench-tui@localhost", args.version)
    try:
        asyncio.run(measure(node, args.seconds))
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
