#!/usr/bin/env python3
"""Memory under a backlog: the embedded broker's memory alarm against RabbitMQ's, side by side in one run.

Each round starts a fresh RabbitMQ node and a fresh embedded broker, both with a memory limit (RabbitMQ:
vm_memory_high_watermark.absolute, which counts the whole node; embedded: --memory-limit, which counts the
messages it holds), then, on each in turn, one aio-pika publisher with confirms (500 in flight) sends
300,000 1 KB messages to a queue nobody reads. Publishing ends when all are confirmed, or when confirms
stop for 5 s while the broker's memory alarm is on (the publisher is blocked). Then the queue is purged and
the bench waits for the alarm to clear.

Per broker it prints the messages confirmed, the messages held when the alarm went on, the peak resident
memory of the broker's process (sampled every 0.2 s), the memory each held message cost, and how long the
alarm took to clear after the purge; min/median/max over the rounds, with the load average beside each
round.

    .venv/bin/python bench/broker_memory.py [--messages 300000] [--limit 400MB] [--rounds 2] [--version 4.0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import embedded_node
import rabbitmq_node
from embedded_broker import broker_pid, rss_bytes

BODY = b"x" * 1024
WINDOW = 500
STALLED = 5.0  # seconds without a confirm, alarm on: the publisher is blocked
SAMPLE = 0.2
MB = 1024 * 1024


@dataclass
class Backlog:
    """What one broker did with the backlog."""

    confirmed: int
    held_at_alarm: int | None  # None: the alarm never went on
    idle_rss: int
    peak_rss: int
    cleared_after: float | None  # seconds from the purge to the alarm's end; None: it never went on
    seconds: float

    @property
    def per_message(self) -> float:
        return (self.peak_rss - self.idle_rss) / max(self.confirmed, 1)


async def alarm_on(api: httpx.AsyncClient) -> bool:
    nodes = (await api.get("/api/nodes")).json()
    return any(node.get("mem_alarm") for node in nodes)


async def backlog(node: Any, messages: int) -> Backlog:
    pid = broker_pid(node)
    idle = peak = rss_bytes(pid)
    confirmed = 0
    held_at_alarm: int | None = None
    async with httpx.AsyncClient(base_url=node.management_url, auth=("guest", "guest"), timeout=10) as api:
        connection = await aio_pika.connect(node.amqp_url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue("bench.backlog", durable=True)
            last_confirm = started = time.monotonic()

            async def publish() -> None:
                nonlocal confirmed, last_confirm
                for start in range(0, messages, WINDOW):
                    await asyncio.gather(
                        *(
                            channel.default_exchange.publish(aio_pika.Message(BODY), queue.name, mandatory=False)
                            for _ in range(min(WINDOW, messages - start))
                        )
                    )
                    confirmed += min(WINDOW, messages - start)
                    last_confirm = time.monotonic()

            publisher = asyncio.create_task(publish())
            while not publisher.done():
                await asyncio.sleep(SAMPLE)
                peak = max(peak, rss_bytes(pid))
                alarm = await alarm_on(api)
                if alarm and held_at_alarm is None:
                    held_at_alarm = confirmed
                if alarm and time.monotonic() - last_confirm > STALLED:
                    publisher.cancel()
            seconds = time.monotonic() - started
            await asyncio.gather(publisher, return_exceptions=True)
            # A blocked connection is not read from: the purge goes over a connection that published nothing.
            cleaner = await aio_pika.connect(node.amqp_url)
            try:
                purged = time.monotonic()
                await (await cleaner.channel()).queue_delete("bench.backlog")
                cleared_after = None
                if held_at_alarm is not None:
                    while await alarm_on(api):
                        await asyncio.sleep(SAMPLE)
                    cleared_after = time.monotonic() - purged
            finally:
                await cleaner.close()
        finally:
            await connection.close()
    return Backlog(confirmed, held_at_alarm, idle, peak, cleared_after, seconds)


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    if not values:
        return "no sample"
    low, mid, high = min(values) / scale, statistics.median(values) / scale, max(values) / scale
    return f"{low:,.0f} / {mid:,.0f} / {high:,.0f} {unit}"


def report(name: str, rounds: list[Backlog], messages: int) -> None:
    alarms = [r.held_at_alarm for r in rounds if r.held_at_alarm is not None]
    cleared = [r.cleared_after for r in rounds if r.cleared_after is not None]
    print(f"  {name}")
    print(f"    confirmed of {messages:,}     {spread([r.confirmed for r in rounds], 'messages')}")
    alarm_line = spread([float(a) for a in alarms], "messages") if alarms else "never"
    print(f"    alarm on, messages held  {alarm_line} ({len(alarms)} of {len(rounds)} rounds)")
    print(f"    idle RSS                 {spread([r.idle_rss for r in rounds], 'MB', MB)}")
    print(f"    peak RSS                 {spread([r.peak_rss for r in rounds], 'MB', MB)}")
    print(f"    per confirmed message    {spread([r.per_message for r in rounds], 'B')}")
    cleared_line = f"{spread(cleared, 's')}" if cleared else "no alarm to clear"
    print(f"    alarm cleared after purge {cleared_line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--limit", default="400MB", help="memory limit of both brokers (default 400MB)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    args = parser.parse_args()
    from amqp_lab.embedded.server import parse_memory_limit

    # aiormq warns of each block and unblock; the figures say it.
    logging.getLogger("aiormq").setLevel(logging.ERROR)

    limit = parse_memory_limit(args.limit)
    results: dict[str, list[Backlog]] = {"RabbitMQ": [], "embedded": []}
    print(f"{args.messages:,} transient 1 KB messages to a queue nobody reads, memory limit {limit / MB:,.0f} MB")
    for n in range(args.rounds):
        rabbit = rabbitmq_node.start(
            "amqplab-bench-memory@localhost",
            args.version,
            extra_config=f"vm_memory_high_watermark.absolute = {limit}\n",
        )
        embedded = embedded_node.start(options=("--memory-limit", str(limit)))
        try:
            for name, node in (("RabbitMQ", rabbit), ("embedded", embedded))[:: 1 if n % 2 == 0 else -1]:
                load = os.getloadavg()[0]
                result = asyncio.run(backlog(node, args.messages))
                results[name].append(result)
                alarm = f"alarm at {result.held_at_alarm:,}" if result.held_at_alarm is not None else "no alarm"
                print(
                    f"  round {n + 1} {name:<9} confirmed {result.confirmed:>8,} ({alarm})"
                    f"  peak RSS {result.peak_rss / MB:6.0f} MB  load {load:.2f}"
                )
        finally:
            embedded_node.stop(embedded)
            rabbitmq_node.stop(rabbit)
    print(f"min / median / max over {args.rounds} rounds (RabbitMQ {args.version}'s limit counts the whole node,")
    print("the embedded broker's the messages it holds):")
    for name, rounds in results.items():
        report(name, rounds, args.messages)
    ratio = statistics.median(r.peak_rss for r in results["embedded"]) / statistics.median(
        r.peak_rss for r in results["RabbitMQ"]
    )
    print(f"  ratio embedded/RabbitMQ, peak RSS: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
