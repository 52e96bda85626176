#!/usr/bin/env python3
"""Load from several machines: what one agent process generates against two, side by side in one run.

On one private RabbitMQ node, `amqp-lab agent` processes (on this machine) take the clients of
a workers run at full speed (2 producers with confirms and no rate limit, 4 workers with
manual acks, no processing time), coordinated through the broker. Rounds alternate between one
agent and two; each prints tasks acked per second over the run (the ledger's acked count over
the time producers sent). Prints the median of each and the ratio two/one (ideal: 2; one
machine's cores and the broker it also runs cap it), and what each run lost (target 0).

    .venv/bin/python bench/agents.py [--seconds 10] [--rounds 3] [--version 4.0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node
from amqp_lab.config import build
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load


def start_agents(count: int, url: str) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "amqp_lab", "agent", "--name", f"bench-{n}", "--url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "AMQP_URL": ""},
        )
        for n in range(1, count + 1)
    ]


def stop_agents(agents: list[subprocess.Popen[bytes]]) -> None:
    for agent in agents:
        agent.send_signal(signal.SIGINT)
    for agent in agents:
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()


async def round_with(count: int, node: rabbitmq_node.PrivateNode, seconds: float) -> tuple[float, int]:
    """Tasks acked per second with `count` agents, and what the run lost."""
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url})
    agents = start_agents(count, node.amqp_url)
    try:
        overrides = [f"duration={seconds}s", "workers.producers=2", "workers.workers=4", "workers.rate=max"]
        overrides += ["workers.processing='fixed:0ms'", "workers.prefetch=50", "drain=30s"]
        final = await Run(load("workers", overrides), replace(settings, agents=count)).execute()
    finally:
        stop_agents(agents)
    return final.ledger.acked / seconds, final.ledger.lost


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    args = parser.parse_args()
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    node = rabbitmq_node.start("amqplab-bench-agents@localhost", args.version)
    try:
        rates: dict[int, list[float]] = {1: [], 2: []}
        for number in range(1, args.rounds + 1):
            for count in rates:
                rate, lost = await round_with(count, node, args.seconds)
                rates[count].append(rate)
                agents = "2 agents" if count == 2 else "1 agent "
                print(f"round {number}  {agents}  {rate:8,.0f} tasks/s acked   lost {lost}")
    finally:
        rabbitmq_node.stop(node)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"\nmedian: one agent {one:,.0f}/s, two agents {two:,.0f}/s   two/one: {two / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
