#!/usr/bin/env python3
"""What the explorer costs a broker with thousands of queues, against a naive client, in one run.

One private RabbitMQ node holds N idle queues and seed_broker.py's busy shop.
Side by side, rounds alternating:
  first render  app start to the first queue rows on screen (headless Textual, the real app)
  lab poll      one explorer poll: the overview and one page of 500 queues, only the
                columns the table shows, sorted by the broker
  plain         GET /api/queues whole: every field of every queue, as a naive client asks
                (a naive explorer cannot render before it has this)

Prints medians, the bytes of each, and the ratios plain / lab: above 1 the lab's way
is cheaper for the broker and the network.

    python3 bench/queue_listing.py [--queues 5000] [--rounds 5] [--version 4.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node
import seed_broker
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import QueueStats
from amqp_lab.broker.poller import QUEUE_LIMIT, ManagementPoller
from amqp_lab.config import build
from amqp_lab.ui.app import make_app
from amqp_lab.ui.widgets.queue_table import QueueTable


async def first_render(settings: object) -> float:
    """Seconds from starting the app to queue rows on its screen."""
    start = time.perf_counter()
    app = make_app(settings)  # type: ignore[arg-type]
    async with app.run_test(size=(140, 40)) as pilot:
        while not (app.screen.query(QueueTable) and app.screen.query_one(QueueTable).row_count):
            await pilot.pause(0.01)
        return time.perf_counter() - start


async def measure(node: rabbitmq_node.PrivateNode, count: int, rounds: int) -> None:
    await seed_broker.declare_idle(node.amqp_url, count)
    stop = asyncio.Event()
    shop = asyncio.create_task(seed_broker.shop(node.amqp_url, 50, stop))
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "timeout": 120})
    renders, polls, plains = [], [], []
    try:
        async with (
            ManagementClient(settings) as client,
            httpx.AsyncClient(auth=("guest", "guest"), timeout=120) as plain,
        ):
            while (await client.queue_page(page_size=1)).total_count < count + 2:  # the management DB lists them all
                await asyncio.sleep(0.2)
            poller = ManagementPoller(client, 5.0, lambda snapshot: None)
            for _ in range(rounds):
                renders.append(await first_render(settings))

                start = time.perf_counter()
                snapshot = await poller.poll_once()
                polls.append(time.perf_counter() - start)
                assert snapshot.ok and len(snapshot.queues) == QUEUE_LIMIT

                start = time.perf_counter()
                response = await plain.get(node.management_url + "api/queues")
                plains.append(time.perf_counter() - start)
                plain_bytes = len(response.content)
                assert len(response.json()) == count + 2
            # Bytes of one poll: the same two requests the poller makes.
            params = {"page": 1, "page_size": QUEUE_LIMIT, "columns": QueueStats.COLUMNS, "sort": "name"}
            poll_bytes = len((await plain.get(node.management_url + "api/queues", params=params)).content)
            poll_bytes += len((await plain.get(node.management_url + "api/overview")).content)
    finally:
        stop.set()
        await shop

    render, poll, naive = statistics.median(renders), statistics.median(polls), statistics.median(plains)
    print(f"RabbitMQ {node.version}, {count:,} idle queues and a busy shop, median of {rounds} rounds")
    print(f"  first render (app start to rows)     : {render * 1000:8.0f} ms")
    print(f"  lab poll (overview + 1 page of {QUEUE_LIMIT}) : {poll * 1000:8.0f} ms  {poll_bytes / 1024:8.0f} KiB")
    print(f"  plain GET /api/queues whole          : {naive * 1000:8.0f} ms  {plain_bytes / 1024:8.0f} KiB")
    print(f"  ratio plain/lab poll: time {naive / poll:.2f}x, bytes {plain_bytes / poll_bytes:.1f}x")
    print(f"  ratio plain fetch / lab first render: {naive / render:.2f}x")


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
