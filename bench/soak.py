#!/usr/bin/env python3
"""Does the lab leak or slow down over a long run? RSS and event-loop lag of the TUI and of its clients.

On one private RabbitMQ node, the real app (headless driver, 140x40) shows the live run
screen of the workers scenario at a moderate load (default 200 tasks/s, 3 workers,
processing 5 ms) for `--minutes` (30 by default). Every `--every` seconds it prints:
  TUI      resident memory of this process (the app) and how late a 10 ms timer in the
           app's loop fired (p99 and max over the interval)
  clients  resident memory of the run's process (every simulated client) and the worst
           lateness of its 0.1 s snapshot timer (the run reports it in each snapshot)
and the ledger so far. At the end: each process's growth from the first sample after
the warm-up to the last. Target: under 10 %.

Not part of the test suite: it takes half an hour.

    .venv/bin/python bench/soak.py [--minutes 30] [--every 60] [--warmup 5] [--rate 200] [--version 4.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node
from amqp_lab.config import build
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import make_app
from amqp_lab.ui.screens.run import LiveRunScreen

TICK = 0.010
SIZE = (140, 40)
GROWTH_TARGET = 0.10


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the run started
    tui_rss: float  # MiB
    tui_lag_p99: float  # ms
    tui_lag_max: float
    clients_rss: float
    clients_lag_max: float
    published: int
    acked: int
    lost: int


def rss_mib(pid: int | str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 2 else max(values, default=0.0)


async def soak(node: rabbitmq_node.PrivateNode, args: argparse.Namespace) -> list[Sample]:
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "refresh": 1, "timeout": 30})
    seconds = args.minutes * 60
    scenario = load(
        "workers",
        [
            f"duration={seconds + 60}",
            f"workers.rate={args.rate}",
            "workers.processing=5ms",
            "workers.workers=3",
        ],
    )
    app = make_app(settings)
    samples: list[Sample] = []
    lags: list[float] = []
    clients_lag = 0.0

    async def tick() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append((time.perf_counter() - start - TICK) * 1000)

    async with app.run_test(size=SIZE):
        await app.push_screen(LiveRunScreen(scenario))
        async with asyncio.timeout(60):
            while app.run_latest is None or app.run_latest.state != "running":
                await asyncio.sleep(0.1)
        assert app.lab_run is not None and app.lab_run.pid is not None
        pid = app.lab_run.pid
        ticking = asyncio.create_task(tick())
        started = time.monotonic()
        next_sample = started + args.every
        print(f"RabbitMQ {node.version}, workers at {args.rate:g} tasks/s for {args.minutes:g} min", flush=True)
        print("    time | TUI rss  lag p99   max | clients rss  lag max | published     acked  lost", flush=True)
        while time.monotonic() - started < seconds:
            await asyncio.sleep(0.1)
            latest = app.run_latest
            if latest is not None:
                clients_lag = max(clients_lag, latest.loop_lag * 1000)
            if time.monotonic() < next_sample or latest is None:
                continue
            next_sample += args.every
            sample = Sample(
                time.monotonic() - started,
                rss_mib("self"),
                p99(lags),
                max(lags, default=0.0),
                rss_mib(pid),
                clients_lag,
                latest.ledger.published,
                latest.ledger.acked,
                latest.ledger.lost,
            )
            samples.append(sample)
            lags.clear()
            clients_lag = 0.0
            print(
                f"  {sample.at / 60:5.1f} m | {sample.tui_rss:6.1f} MiB"
                f" {sample.tui_lag_p99:5.1f} ms {sample.tui_lag_max:5.0f} ms"
                f" | {sample.clients_rss:6.1f} MiB {sample.clients_lag_max:6.0f} ms"
                f" | {sample.published:9,} {sample.acked:9,} {sample.lost:5}",
                flush=True,
            )
        ticking.cancel()
        await app.end_run()
        final = app.run_latest
        if final is not None:
            counts = final.ledger
            print(f"  end: published {counts.published:,}, acked {counts.acked:,}, lost {counts.lost}")
    return samples


def summary(samples: list[Sample], warmup: float) -> None:
    settled = [s for s in samples if s.at >= warmup * 60] or samples[-1:]
    first, last = settled[0], settled[-1]
    for name, start, end in (
        ("TUI", first.tui_rss, last.tui_rss),
        ("clients", first.clients_rss, last.clients_rss),
    ):
        growth = (end - start) / start
        verdict = "ok" if growth < GROWTH_TARGET else "OVER TARGET"
        print(
            f"  {name:<8} rss {start:6.1f} MiB at {first.at / 60:4.1f} m -> {end:6.1f} MiB at {last.at / 60:4.1f} m:"
            f" {growth:+.1%} ({verdict}, target < {GROWTH_TARGET:.0%})"
        )
    half = len(settled) // 2 or 1
    for name, pick in (("TUI lag p99", lambda s: s.tui_lag_p99), ("clients lag max", lambda s: s.clients_lag_max)):
        early = statistics.median(pick(s) for s in settled[:half])
        late = statistics.median(pick(s) for s in settled[half:] or settled)
        print(f"  {name:<16} median of samples, first half {early:6.1f} ms, second half {late:6.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes before the baseline sample")
    parser.add_argument("--rate", type=float, default=200.0, help="tasks per second")
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    args = parser.parse_args()
    node = rabbitmq_node.start("amqplab-bench-soak@localhost", args.version)
    try:
        samples = asyncio.run(soak(node, args))
    finally:
        rabbitmq_node.stop(node)
    if not samples:
        print("no samples: make --minutes longer than --every")
        return 1
    summary(samples, args.warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
