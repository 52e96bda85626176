#!/usr/bin/env python3
"""The embedded broker against RabbitMQ, side by side in one run.

  throughput  aio-pika end to end (bench/workers_throughput.py's bare loop: one publisher with
              confirms, 256 in flight, N consumers with prefetch 10 and manual acks), messages
              per second after the first second, rounds alternating between the brokers
  memory      resident memory each broker process gains per queued 1 KB message (N messages
              published to a queue nobody reads, measured once the broker is idle again)

Prints both and the ratio embedded/RabbitMQ (target: at least 0.7 for throughput).

    python3 bench/embedded_broker.py [--seconds 8] [--rounds 3] [--workers 3] [--version 4.0] [--persistent]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import embedded_node
import rabbitmq_node
from workers_throughput import bare

QUEUED = 20_000
BODY = b"x" * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def broker_pid(node: Any) -> int:
    if isinstance(node, embedded_node.EmbeddedNode):
        assert node.pid is not None
        return node.pid
    return int((node.host_dir / "rabbitmq.pid").read_text().strip())


async def per_message(node: Any, persistent: bool) -> float:
    """Bytes of resident memory per queued 1 KB message."""
    connection = await aio_pika.connect(node.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("bench.memory", durable=True)
        await asyncio.sleep(1.0)
        before = rss_bytes(broker_pid(node))
        mode = aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
        for start in range(0, QUEUED, 500):
            await asyncio.gather(
                *(channel.default_exchange.publish(aio_pika.Message(BODY, delivery_mode=mode), queue.name)
                  for _ in range(min(500, QUEUED - start)))
            )  # fmt: skip
        await asyncio.sleep(2.0)
        after = rss_bytes(broker_pid(node))
        await queue.delete(if_unused=False, if_empty=False)
        return (after - before) / QUEUED
    finally:
        await connection.close()


async def measure(rabbit: Any, embedded: Any, args: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"RabbitMQ": [], "embedded": []}
    for n in range(args.rounds):
        for name, node in (("RabbitMQ", rabbit), ("embedded", embedded)):
            rates[name].append(await bare(node.amqp_url, args.seconds, args.workers, args.persistent))
        print(
            f"  round {n + 1}: RabbitMQ {rates['RabbitMQ'][-1]:7.0f} msg/s"
            f"   embedded {rates['embedded'][-1]:7.0f} msg/s"
        )
    memory = {
        name: await per_message(node, args.persistent) for name, node in (("RabbitMQ", rabbit), ("embedded", embedded))
    }
    kind = "persistent" if args.persistent else "transient"
    rabbitmq, ours = statistics.median(rates["RabbitMQ"]), statistics.median(rates["embedded"])
    print(f"aio-pika end to end, {args.workers} consumers, confirms, {kind}, median of {args.rounds} rounds")
    print(
        f"  RabbitMQ {rabbit.version:<5}     {rabbitmq:8.0f} msg/s"
        f"   {memory['RabbitMQ']:7.0f} B per queued 1 KB message"
    )
    print(f"  embedded broker    {ours:8.0f} msg/s   {memory['embedded']:7.0f} B per queued 1 KB message")
    print(f"  ratio embedded/RabbitMQ: throughput {ours / rabbitmq:.2f} (target >= 0.7)")


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
