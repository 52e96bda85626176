#!/usr/bin/env python3
"""What the explorer costs a broker with thousands of queues, against a naive client, in one run.

One private RabbitMQ node holds N idle queues and seed_broker.py's busy shop.
Side by side, rounds alternating:
  first rows    app start to the first queue rows on screen (headless Textual, the real app): the
                broker's first page, unsorted, which the notice says
  sorted rows   app start to the page sorted by name on screen (the poll that follows at once)
  lab poll      one steady explorer poll: the overview and one page of 500 queues sorted by the
                broker, only the columns the table shows
  whole list    GET /api/queues whole and parsed: every field of every queue, what a naive
                explorer needs before it can sort and draw anything

Prints min/median/max of each, the bytes of a poll and of the whole list, the ratios whole list /
first rows and whole list / lab poll, and the load average.

    .venv/bin/python bench/queue_listing.py [--queues 20000] [--rounds 5] [--version 4.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from spread import spread


async def first_render(settings: object) -> tuple[float, float]:
    """Seconds from starting the app to queue rows on its screen, and to the rows sorted by name."""
    start = time.perf_counter()
    app = make_app(settings)  # type: ignore[arg-type]
    async with app.run_test(size=(140, 40)) as pilot:
        while not (app.screen.query(QueueTable) and app.screen.query_one(QueueTable).row_count):
            await pilot.pause(0.01)
        first = time.perf_counter() - start
        while app.snapshot is None or app.snapshot.in_broker_order:
            await pilot.pause(0.01)
        await pilot.pause()
        return first, time.perf_counter() - start


async def measure(node: rabbitmq_node.PrivateNode, count: int, rounds: int) -> None:
    await seed_broker.declare_idle(node.amqp_url, count)
    stop = asyncio.Event()
    shop = asyncio.create_task(seed_broker.shop(node.amqp_url, 50, stop))
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "timeout": 120})
    firsts, sorts, polls, wholes, loads = [], [], [], [], []
    try:
        async with (
            ManagementClient(settings) as client,
            httpx.AsyncClient(auth=("guest", "guest"), timeout=120) as plain,
        ):
            while (await client.queue_page(page_size=1)).total_count < count + 2:  # the management DB lists them all
                await asyncio.sleep(0.2)
            poller = ManagementPoller(client, 5.0, lambda snapshot: None)
            poller.last = await poller.poll_once()  # the steady state: the broker sorts the page
            for _ in range(rounds):
                first, sorted_rows = await first_render(settings)
                firsts.append(first)
                sorts.append(sorted_rows)

                start = time.perf_counter()
                snapshot = await poller.poll_once()
                polls.append(time.perf_counter() - start)
                assert snapshot.ok and len(snapshot.queues) == QUEUE_LIMIT and not snapshot.in_broker_order

                start = time.perf_counter()
                response = await plain.get(node.management_url + "api/queues")
                every = [QueueStats.parse(item) for item in response.json()]
                wholes.append(time.perf_counter() - start)
                whole_bytes = len(response.content)
                assert len(every) == count + 2
                loads.append(os.getloadavg()[0])
            # Bytes of one poll: the same two requests the poller makes.
            params = {"page": 1, "page_size": QUEUE_LIMIT, "columns": QueueStats.COLUMNS, "sort": "name"}
            poll_bytes = len((await plain.get(node.management_url + "api/queues", params=params)).content)
            poll_bytes += len((await plain.get(node.management_url + "api/overview")).content)
    finally:
        stop.set()
        await shop

    print(f"RabbitMQ {node.version}, {count:,} idle queues and a busy shop, {rounds} rounds, ms min / median / max")
    print(f"  first rows (app start to rows)        {spread(firsts, scale=1000)}")
    print(f"  sorted rows (app start to name order) {spread(sorts, scale=1000)}")
    poll = f"{spread(polls, scale=1000)}   {poll_bytes / 1024:7,.0f} KiB"
    print(f"  lab poll (overview + {QUEUE_LIMIT} sorted)      {poll}")
    print(f"  whole list (GET /api/queues, parsed)  {spread(wholes, scale=1000)}   {whole_bytes / 1024:7,.0f} KiB")
    first_ratio = [w / f for w, f in zip(wholes, firsts, strict=True)]
    poll_ratio = [w / p for w, p in zip(wholes, polls, strict=True)]
    print(f"  ratio whole list / first rows: {spread(first_ratio, 2)}")
    print(f"  ratio whole list / lab poll:   {spread(poll_ratio, 2)}")
    print(f"  load average (1 min): {spread(loads, 2)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    args = parser.parse_args()
    # Statistics as a broker installed with defaults keeps them: what listing them costs is what a user meets.
    node = rabbitmq_node.start("amqplab-bench@localhost", args.version, one_second_samples=False)
    try:
        asyncio.run(measure(node, args.queues, args.rounds))
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
