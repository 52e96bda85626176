#!/usr/bin/env python3
"""Seed a broker with something to explore: many idle queues and a few busy ones, kept busy until Ctrl-C.

    .venv/bin/python scripts/seed_broker.py --url amqp://guest:guest@127.0.0.1:5672/ [--queues 5000]

Declares `seed.idle.NNNNN` queues (durable, empty) and a small shop:
  seed.orders (topic) → seed.orders.eu (orders.eu.#) and seed.orders.all (#)
  seed.orders.eu  one consumer, prefetch 10, acks slowly (20 a second)
  seed.orders.all one consumer that takes 5 messages and never acks them (stuck)
and publishes about 50 orders a second. Ctrl-C deletes everything it declared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal

import aio_pika

IDLE = "seed.idle."
SHOP = "seed.orders"
REGIONS = ("eu", "us", "apac")


async def _each_idle(url: str, count: int, act: str, connections: int = 4) -> None:
    """Declare or delete `count` idle queues over a few connections at once: thousands take seconds."""

    async def part(numbers: range) -> None:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            for n in numbers:
                if act == "declare":
                    await channel.declare_queue(f"{IDLE}{n:05d}", durable=True)
                else:
                    await channel.queue_delete(f"{IDLE}{n:05d}")

    await asyncio.gather(*(part(range(i, count, connections)) for i in range(connections)))


async def declare_idle(url: str, count: int) -> None:
    await _each_idle(url, count, "declare")


async def delete_idle(url: str, count: int) -> None:
    await _each_idle(url, count, "delete")


async def shop(url: str, rate: float, stop: asyncio.Event) -> None:
    """The busy part: a producer, a slow consumer and a stuck one, until `stop` is set."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(SHOP, "topic", durable=True)
        eu = await channel.declare_queue(f"{SHOP}.eu", durable=True)
        everything = await channel.declare_queue(f"{SHOP}.all", durable=True, arguments={"x-max-length": 10_000})
        await eu.bind(exchange, "orders.eu.#")
        await everything.bind(exchange, "#")

        slow_channel = await connection.channel()
        await slow_channel.set_qos(prefetch_count=10)

        async def slow(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await asyncio.sleep(0.05)
            await message.ack()

        await (await slow_channel.get_queue(eu.name)).consume(slow)
        stuck_channel = await connection.channel()
        await stuck_channel.set_qos(prefetch_count=5)
        held: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def stuck(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            held.append(message)  # never acked: the explorer flags this consumer

        await (await stuck_channel.get_queue(everything.name)).consume(stuck)
        try:
            for n in itertools.count():
                if stop.is_set():
                    break
                region = REGIONS[n % len(REGIONS)]
                body = json.dumps({"order": n, "region": region, "total": round(9.99 + n % 50, 2)}).encode()
                message = aio_pika.Message(body, content_type="application/json", headers={"region": region})
                await exchange.publish(message, f"orders.{region}.new")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1 / rate)
        finally:
            # Consumers first: deleting a queue under them cancels them noisily. A delivery still being handled
            # may be acked on its closing channel, which RabbitMQ answers by closing the whole connection (504
            # CHANNEL_ERROR), so the deletes go over a connection of their own.
            for consuming in (slow_channel, stuck_channel):
                with contextlib.suppress(Exception):
                    await consuming.close()
            async with await aio_pika.connect(url) as cleaner:
                deleting = await cleaner.channel()
                await deleting.queue_delete(eu.name)
                await deleting.queue_delete(everything.name)
                await deleting.exchange_delete(SHOP)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="AMQP URL of the broker to seed (never a production broker)")
    parser.add_argument("--queues", type=int, default=5000, help="idle queues to declare (default 5000)")
    parser.add_argument("--rate", type=float, default=50.0, help="orders published per second (default 50)")
    args = parser.parse_args()
    stop = asyncio.Event()
    # Ctrl-C or a kill ends the shop and deletes everything, even run in the background (`&`), where the shell
    # has SIGINT ignored; one that comes while the queues are declared ends it as soon as they are.
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)
    print(f"declaring {args.queues:,} idle queues…", flush=True)
    await declare_idle(args.url, args.queues)
    print("seeded; the shop is busy. Ctrl-C deletes everything.", flush=True)
    try:
        await shop(args.url, args.rate, stop)
    finally:
        print("deleting the idle queues…", flush=True)
        await delete_idle(args.url, args.queues)


if __name__ == "__main__":
    asyncio.run(main())
