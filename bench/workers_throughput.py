#!/usr/bin/env python3
"""What the lab's measurement costs: `amqp-lab run workers` at full speed against a bare aio-pika loop.

Side by side in one run, on one private RabbitMQ node, alternating rounds:
  bare  one producer publishing with confirms (256 in flight), persistent, to a
        durable queue; N workers, prefetch 10, manual ack; no ids, no ledger,
        no histograms
  lab   the workers scenario with the same settings (rate max, processing 0),
        every metric on: ids and timestamps, the ledger, HDR latencies, depth
        sampling, snapshots ten times a second

Throughput is acked messages per second between the first second and the end
of each round. Prints both medians and lab/bare: 1.0 means measuring is free.

    python3 bench/workers_throughput.py [--seconds 8] [--rounds 3] [--workers 3] [--version 4.0] [--transient]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node
from amqp_lab.config import build
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load

WINDOW = 256
PREFETCH = 10
WARMUP = 1.0


async def bare(url: str, seconds: float, workers: int, persistent: bool) -> float:
    """Acked messages per second after the warm-up, with plain aio-pika."""
    acked = 0
    connections = [await aio_pika.connect(url) for _ in range(workers + 1)]
    try:
        setup = await connections[0].channel()
        exchange = await setup.declare_exchange("bench.tasks", "direct", durable=True)
        queue = await setup.declare_queue("bench.tasks", durable=True)
        await queue.bind(exchange, "task")

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal acked
            await message.ack()
            acked += 1

        for connection in connections[1:]:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            consumer_queue = await channel.get_queue("bench.tasks", ensure=False)
            await consumer_queue.consume(handle)

        publisher = await connections[0].channel(publisher_confirms=True)
        target = await publisher.get_exchange("bench.tasks", ensure=False)
        window = asyncio.Semaphore(WINDOW)
        body = b"x" * 256
        mode = aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
        tasks: set[asyncio.Task[object]] = set()

        async def publish() -> None:
            try:
                await target.publish(aio_pika.Message(body, delivery_mode=mode), "task")
            finally:
                window.release()

        start = time.monotonic()
        counted_from = None
        while time.monotonic() - start < seconds:
            if counted_from is None and time.monotonic() - start >= WARMUP:
                counted_from = (time.monotonic(), acked)
            await window.acquire()
            task = asyncio.get_running_loop().create_task(publish())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        assert counted_from is not None
        rate = (acked - counted_from[1]) / (time.monotonic() - counted_from[0])
        await asyncio.gather(*tasks)
        for connection in connections[1:]:
            await connection.close()
        await setup.queue_delete("bench.tasks")
        await setup.exchange_delete("bench.tasks")
        return rate
    finally:
        for connection in connections:
            await connection.close()


async def lab(
    settings: object, seconds: float, workers: int, persistent: bool, listen: Callable[[Run], None] | None = None
) -> float:
    scenario = load(
        "workers",
        [f"duration={seconds}", "workers.rate=max", "workers.processing=0ms", f"workers.workers={workers}",
         f"workers.prefetch={PREFETCH}", "workers.publish_mode=confirms", f"workers.persistent={persistent}".lower()],
    )  # fmt: skip
    samples: list[tuple[float, int]] = []

    def sample(snapshot: RunSnapshot) -> None:
        if snapshot.state == "running":
            samples.append((snapshot.elapsed, snapshot.ledger.acked))

    run = Run(scenario, settings)  # type: ignore[arg-type]
    run.add_listener(sample)
    if listen is not None:
        listen(run)
    await run.execute()
    first = next(s for s in samples if s[0] >= WARMUP)
    last = samples[-1]
    return (last[1] - first[1]) / (last[0] - first[0])


async def measure(node: rabbitmq_node.PrivateNode, seconds: float, rounds: int, workers: int, persistent: bool) -> None:
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "timeout": 30})
    bare_rates, lab_rates = [], []
    for n in range(rounds):
        bare_rates.append(await bare(node.amqp_url, seconds, workers, persistent))
        lab_rates.append(await lab(settings, seconds, workers, persistent))
        print(f"  round {n + 1}: bare {bare_rates[-1]:8.0f} msg/s   lab {lab_rates[-1]:8.0f} msg/s", flush=True)
    plain, measured = statistics.median(bare_rates), statistics.median(lab_rates)
    kind = "persistent" if persistent else "transient"
    print(f"RabbitMQ {node.version}, {workers} workers, prefetch {PREFETCH}, confirms, {kind}, median of {rounds}")
    print(f"  bare aio-pika loop  : {plain:8.0f} msg/s")
    print(f"  amqp-lab run workers: {measured:8.0f} msg/s (all metrics on)")
    print(f"  ratio lab/bare: {measured / plain:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    parser.add_argument("--transient", action="store_true", help="non-persistent messages (the broker does less)")
    args = parser.parse_args()
    node = rabbitmq_node.start("amqplab-bench@localhost", args.version)
    try:
        asyncio.run(measure(node, args.seconds, args.rounds, args.workers, not args.transient))
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
