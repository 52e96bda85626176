#!/usr/bin/env python3
"""What --record costs: the same full-speed workers run with and without a recording, and the file's size.

Side by side in one run, on one private RabbitMQ node, alternating rounds (which one goes first alternates too):
  plain     `amqp-lab run workers` at rate max, processing 0, confirms, persistent
  recorded  the same run, its snapshots also written to a recording (engine/recording.py)

Throughput is acked messages per second after the first second of each round, as bench/workers_throughput.py takes
it. Prints min/median/max of each side, recorded/plain (target >= 0.95), the recording's size per minute of run,
and the load average beside each round.

    .venv/bin/python bench/recording.py [--seconds 10] [--rounds 3] [--version 3.10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import rabbitmq_node
from amqp_lab.config import build
from amqp_lab.engine.recording import Recorder, read
from amqp_lab.engine.run import Run
from workers_throughput import lab

WORKERS = 3


class RoundRecording:
    """A recorder attached to one round's run; then its file's frames and size per minute of run."""

    def __init__(self, path: Path, broker: str) -> None:
        self.path, self.broker = path, broker
        self.recorder: Recorder | None = None

    def attach(self, run: Run) -> None:
        self.recorder = Recorder(self.path, run.scenario, self.broker)
        run.add_listener(self.recorder.add)

    def measure(self) -> tuple[int, float]:
        assert self.recorder is not None
        self.recorder.close()
        recording = read(self.path)
        return len(recording.frames), self.path.stat().st_size / recording.duration * 60


def spread(values: list[float]) -> str:
    return f"min {min(values):7.0f}  median {statistics.median(values):7.0f}  max {max(values):7.0f}"


async def measure(node: rabbitmq_node.PrivateNode, seconds: float, rounds: int) -> None:
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "timeout": 30})
    plain: list[float] = []
    recorded: list[float] = []
    per_minute: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for n in range(rounds):
            recording = RoundRecording(Path(folder) / f"round-{n}.rec.gz", settings.primary.display())
            sides = [("plain", None), ("recorded", recording.attach)]
            for name, listen in sides if n % 2 == 0 else reversed(sides):
                rate = await lab(settings, seconds, WORKERS, True, listen)
                (plain if name == "plain" else recorded).append(rate)
            frames, size = recording.measure()
            per_minute.append(size)
            print(
                f"  round {n + 1}: plain {plain[-1]:7.0f} msg/s   recorded {recorded[-1]:7.0f} msg/s   "
                f"recording {size / 1024:6.1f} KiB/min ({frames} frames)   load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    what = f"{WORKERS} workers, confirms, persistent, rate max, {rounds} rounds of {seconds:g} s"
    print(f"RabbitMQ {node.version}, {what}")
    print(f"  plain    : {spread(plain)} msg/s")
    print(f"  recorded : {spread(recorded)} msg/s")
    print(f"  ratio recorded/plain (medians): {statistics.median(recorded) / statistics.median(plain):.2f}")
    print(f"  recording size: {statistics.median(per_minute) / 1024:.1f} KiB per minute of run (median)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    args = parser.parse_args()
    node = rabbitmq_node.start("amqplab-bench-rec@localhost", args.version)
    try:
        asyncio.run(measure(node, args.seconds, args.rounds))
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
