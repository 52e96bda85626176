#!/usr/bin/env python3
"""The embedded broker against RabbitMQ, side by side in one run.

  throughput  aio-pika end to end (bench/workers_throughput.py's bare loop: one publisher with
              confirms, 256 in flight, N consumers with prefetch 10 and manual acks, a classic
              queue on both), acked messages per second after the first second, rounds
              alternating between the brokers (the order flips each round), with the ratio
              embedded/RabbitMQ taken round by round
  memory      what each broker holds per queued 1 KB message: N messages published to a queue
              nobody reads, the memory before and after, then the queue deleted, batch by batch.
              RabbitMQ's is the Erlang VM's memory after a garbage collection of every process
              (rabbitmqctl eval): its mem_used counts what its allocators hold, which grows once
              on a fresh node (some 8 KB a message) and is reused after (some 2.7 KB), and the
              binaries of a deleted queue linger until a collection. The first batch warms the
              node and is shown apart. The embedded broker's is the resident memory of a fresh
              broker process per batch (Python keeps freed memory for reuse, so a second batch
              in the same process would read as nearly nothing); its own mem_used counts only
              the bodies it holds

Prints min/median/max of each, and the load average at each round.

    .venv/bin/python bench/embedded_broker.py [--seconds 8] [--rounds 3] [--workers 3] [--version 4.0] [--persistent]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import embedded_node
import rabbitmq_node
from spread import spread
from workers_throughput import Work, bare_aio_pika

QUEUED = 20_000
BATCHES = 4  # RabbitMQ's first warms the node
BODY = b"x" * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def erlang_memory(node: Any) -> int:
    """The Erlang VM's memory once every process has been garbage collected: what the node holds, live."""
    collect = "[erlang:garbage_collect(P) || P <- erlang:processes()], erlang:memory(total)."
    done = await asyncio.to_thread(node.ctl, "eval", collect)
    return int(done.stdout.strip().rstrip("."))


async def batch(amqp_url: str, persistent: bool, read: Callable[[], Awaitable[int]]) -> float:
    """Bytes per queued 1 KB message in one batch of QUEUED."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        mode = aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
        queue = await channel.declare_queue("bench.memory", durable=True, arguments={"x-queue-type": "classic"})
        before = await read()
        for start in range(0, QUEUED, 500):
            await asyncio.gather(
                *(channel.default_exchange.publish(aio_pika.Message(BODY, delivery_mode=mode), queue.name)
                  for _ in range(min(500, QUEUED - start)))
            )  # fmt: skip
        after = await read()
        await queue.delete(if_unused=False, if_empty=False)
        return (after - before) / QUEUED
    finally:
        await connection.close()


async def rabbitmq_per_message(node: Any, persistent: bool) -> list[float]:
    return [await batch(node.amqp_url, persistent, lambda: erlang_memory(node)) for _ in range(BATCHES)]


async def embedded_per_message(persistent: bool) -> list[float]:
    figures = []
    for _ in range(BATCHES):
        node = await asyncio.to_thread(embedded_node.start)
        try:
            pid = node.pid
            assert pid is not None

            async def resident(pid: int = pid) -> int:
                await asyncio.sleep(0.5)  # its last publishes handled
                return rss_bytes(pid)

            figures.append(await batch(node.amqp_url, persistent, resident))
        finally:
            embedded_node.stop(node)
    return figures


async def measure(rabbit: Any, embedded: Any, args: argparse.Namespace) -> None:
    nodes = {"RabbitMQ": rabbit, "embedded": embedded}
    rates: dict[str, list[float]] = {name: [] for name in nodes}
    loads: list[float] = []
    work = Work(args.seconds, args.workers, args.persistent, "classic")
    for n in range(args.rounds):
        for name in list(nodes) if n % 2 == 0 else list(reversed(nodes)):
            rates[name].append((await bare_aio_pika(nodes[name].amqp_url, work)).rate)
        loads.append(os.getloadavg()[0])
        print(
            f"  round {n + 1}: RabbitMQ {rates['RabbitMQ'][-1]:7,.0f} msg/s   embedded {rates['embedded'][-1]:7,.0f}"
            f" msg/s   load {loads[-1]:.2f}",
            flush=True,
        )
    memory = {
        "RabbitMQ": await rabbitmq_per_message(rabbit, args.persistent),
        "embedded": await embedded_per_message(args.persistent),
    }
    kind = "persistent" if args.persistent else "transient"
    print(
        f"\naio-pika end to end, classic queue, {args.workers} consumers, confirms, {kind}; "
        f"{args.rounds} rounds of {args.seconds:g} s, min / median / max"
    )
    print(f"  {'':18} {'acked msg/s':>24}   {'B per queued 1 KB message':>28}")
    rabbitmq_warm_up, *rabbitmq_warm = memory["RabbitMQ"]
    print(
        f"  {'RabbitMQ ' + rabbit.version:18} {spread(rates['RabbitMQ']):>24}   {spread(rabbitmq_warm):>28}"
        f"   (its first batch, warming the node: {rabbitmq_warm_up:,.0f})"
    )
    print(f"  {'embedded broker':18} {spread(rates['embedded']):>24}   {spread(memory['embedded']):>28}")
    ratios = [ours / theirs for ours, theirs in zip(rates["embedded"], rates["RabbitMQ"], strict=True)]
    print(f"  throughput embedded/RabbitMQ, round by round: {spread(ratios, 2)} (target >= 0.7)")
    print(f"  load average (1 min) at the rounds' ends: {spread(loads, 2)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    parser.add_argument("--persistent", action="store_true", help="persistent messages (RabbitMQ writes them)")
    args = parser.parse_args()
    rabbit = rabbitmq_node.start("amqplab-bench-embedded@localhost", args.version)
    embedded = embedded_node.start()
    try:
        asyncio.run(measure(rabbit, embedded, args))
    finally:
        embedded_node.stop(embedded)
        rabbitmq_node.stop(rabbit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
