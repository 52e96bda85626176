#!/usr/bin/env python3
"""How cheap the overview's queue listing is on a broker with thousands of queues.

Side by side in one run, against one private RabbitMQ node holding N queues:
  lab    ManagementClient.queues(): only the columns the table shows, pages of 500
  plain  GET /api/queues: every field of every queue, as a naive client asks

Prints the time and bytes of each and their ratio (plain / lab): above 1 the
lab's way is cheaper for the broker and the network.

    python3 bench/queue_listing.py [--queues 5000] [--rounds 5] [--version 4.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aio_pika
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node
from amqp_lab.broker.management import MAX_PAGE_SIZE, ManagementClient
from amqp_lab.broker.models import QueueStats
from amqp_lab.config import build


async def declare(url: str, count: int) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for n in range(count):
            await channel.declare_queue(f"bench-{n:05d}", durable=True)


async def measure(node: rabbitmq_node.PrivateNode, count: int, rounds: int) -> None:
    await declare(node.amqp_url, count)
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "timeout": 120})
    lab_times, plain_times = [], []
    lab_bytes = plain_bytes = 0
    async with ManagementClient(settings) as client, httpx.AsyncClient(auth=("guest", "guest"), timeout=120) as plain:
        # Wait until the management database lists every queue.
        while (await client.queue_page(page_size=1)).total_count < count:
            await asyncio.sleep(0.2)
        for _ in range(rounds):
            start = time.perf_counter()
            queues, _ = await client.queues(limit=count)
            lab_times.append(time.perf_counter() - start)
            assert len(queues) == count

            start = time.perf_counter()
            response = await plain.get(node.management_url + "api/queues")
            plain_times.append(time.perf_counter() - start)
            plain_bytes = len(response.content)
            assert len(response.json()) == count
        # Bytes of one lab listing: the same requests the client makes, page by page.
        for page in range(1, (count + MAX_PAGE_SIZE - 1) // MAX_PAGE_SIZE + 1):
            params = {"page": page, "page_size": MAX_PAGE_SIZE, "columns": QueueStats.COLUMNS}
            lab_bytes += len((await plain.get(node.management_url + "api/queues", params=params)).content)

    lab, naive = statistics.median(lab_times), statistics.median(plain_times)
    print(f"RabbitMQ {node.version}, {count} queues, median of {rounds} rounds")
    print(f"  lab   (columns + pages of 500): {lab * 1000:8.1f} ms  {lab_bytes / 1024:8.0f} KiB")
    print(f"  plain (GET /api/queues)       : {naive * 1000:8.1f} ms  {plain_bytes / 1024:8.0f} KiB")
    print(f"  ratio plain/lab: time {naive / lab:.2f}x, bytes {plain_bytes / max(lab_bytes, 1):.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    args = parser.parse_args()
    node = rabbitmq_node.start("amqplab-bench@localhost", args.version)
    try:
        asyncio.run(measure(node, args.queues, args.rounds))
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
