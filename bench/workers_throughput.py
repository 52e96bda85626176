#!/usr/bin/env python3
"""What the lab's measurement costs: `amqp-lab run workers` at full speed against bare client loops, in one run.

On one private RabbitMQ node, rounds alternating (the order flips each round), every side doing the same work:
one producer publishing with confirms (256 in flight), persistent, to a durable queue of the same type; N workers,
prefetch 10, manual ack.
  aiormq    the bare loop on aiormq, the AMQP library under aio-pika
  aio-pika  the same loop on aio-pika
  lab       the workers scenario (rate max, processing 0), in this process, every metric on: ids and
            timestamps, the ledger, HDR latencies, depth sampling, snapshots
  lab unmeasured (with --unmeasured) the lab with its per-message measurement off: messages carry no id and
            no timestamp, so the ledger, the latencies and the per-message events pass them by, as they pass by a
            message the lab did not publish; counted by the workers' own tally. What the figures cost the lab
  lab x8    (with --scaling) the lab with 8 workers: what adding clients costs one process
  aiormq x8 (with --scaling) the bare aiormq loop with 8 workers: what they cost the library and the broker
  lab procs (with --processes) the lab with --processes auto, against the lab in one process, both with two
            producers and two workers (at least one producer per process, or the spread has nothing to share);
            this mode runs these two sides only. Client CPU is not taken for it: it is spread over processes.
            It also prints the machine's ceiling for the spread: its cores over the client's and the broker's
            CPU per message in one process, against the rate in one (the clients cannot use more than the
            broker leaves them)

Throughput is acked messages per second from the first second to the end of a round; client CPU is this
process's CPU time per acked message over the same window, broker CPU the node's processes' (/proc). Prints
min/median/max of each, the ratios taken round by round (lab/aiormq, lab/aio-pika, lab x8 / lab, aiormq x8 /
aiormq), and the load average at each round.

Every side runs on uvloop where it is installed (the fast extra), as the lab's runs do; AMQP_LAB_LOOP=asyncio
measures them on asyncio's own loop.

    .venv/bin/python bench/workers_throughput.py [--seconds 8] [--rounds 5] [--workers 1] [--queue-type classic]
                                        [--version 4.0] [--transient] [--scaling | --processes | --unmeasured]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
from pamqp.commands import Basic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_node
from amqp_lab import event_loop
from amqp_lab.config import Settings, auto_processes, build
from amqp_lab.engine.publishing import Letter, Outbox
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load
from spread import spread

WINDOW = 256
PREFETCH = 10
WARMUP = 1.0
QUEUE = "bench.tasks"


@dataclass(frozen=True)
class Work:
    seconds: float
    workers: int
    persistent: bool
    queue_type: str
    producers: int = 1


@dataclass(frozen=True)
class Round:
    rate: float  # acked messages per second
    cpu_us: float  # this process's CPU microseconds per acked message
    broker_us: float  # the broker's CPU microseconds per acked message (every process of the node)


class BrokerCpu:
    """The CPU seconds the node's processes have used: what the broker costs beside the clients."""

    def __init__(self, node: rabbitmq_node.PrivateNode) -> None:
        self._stats = [Path(f"/proc/{pid}/stat") for pid in rabbitmq_node.running_from(str(node.host_dir))]
        self._tick = os.sysconf("SC_CLK_TCK")

    def __call__(self) -> float:
        ticks = 0
        for stat in self._stats:
            with contextlib.suppress(OSError):  # a helper process that ended
                fields = stat.read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / self._tick


class Window:
    """Acked count, this process's CPU time and the broker's from the end of the warm-up to the end of the round."""

    def __init__(self, broker: BrokerCpu) -> None:
        self.acked = 0
        self._broker = broker
        self._from: tuple[float, float, float, int] | None = None

    def mark(self) -> None:
        self._from = (time.monotonic(), time.process_time(), self._broker(), self.acked)

    def result(self) -> Round:
        assert self._from is not None, "the round ended before its warm-up"
        wall, cpu, broker, acked = self._from
        counted = max(self.acked - acked, 1)
        return Round(
            counted / (time.monotonic() - wall),
            (time.process_time() - cpu) * 1e6 / counted,
            (self._broker() - broker) * 1e6 / counted,
        )


async def publish_for(work: Work, window: Window, publish: Callable[[], Awaitable[object]]) -> None:
    """Publish with WINDOW confirms outstanding for `work.seconds`, marking the window after the warm-up."""
    slots = asyncio.Semaphore(WINDOW)
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            await publish()
        finally:
            slots.release()

    start = time.monotonic()
    marked = False
    while time.monotonic() - start < work.seconds:
        if not marked and time.monotonic() - start >= WARMUP:
            window.mark()
            marked = True
        await slots.acquire()
        task = asyncio.get_running_loop().create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def finish(window: Window, connections: Sequence[Any], setup: Any) -> Round:
    """The round's figures; then the workers gone and the queue and exchange deleted (aiormq's and aio-pika's
    channels name these calls alike)."""
    result = window.result()
    for connection in connections[1:]:
        await connection.close()
    await setup.queue_delete(QUEUE)
    await setup.exchange_delete(QUEUE)
    return result


async def bare_aiormq(url: str, work: Work, broker: BrokerCpu) -> Round:
    window = Window(broker)
    connections = [await aiormq.connect(url) for _ in range(work.workers + 1)]
    try:
        setup = await connections[0].channel()
        await setup.exchange_declare(QUEUE, exchange_type="direct", durable=True)
        await setup.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": work.queue_type})
        await setup.queue_bind(QUEUE, QUEUE, routing_key="task")
        for connection in connections[1:]:
            channel = await connection.channel()
            await channel.basic_qos(prefetch_count=PREFETCH)

            async def handle(message: aiormq.abc.DeliveredMessage) -> None:
                await message.channel.basic_ack(message.delivery.delivery_tag)
                window.acked += 1

            await channel.basic_consume(QUEUE, handle)
        publisher = await connections[0].channel(publisher_confirms=True)
        properties = Basic.Properties(delivery_mode=2 if work.persistent else 1)
        body = b"x" * 256
        await publish_for(
            work,
            window,
            lambda: publisher.basic_publish(body, exchange=QUEUE, routing_key="task", properties=properties),
        )
        return await finish(window, connections, setup)
    finally:
        for connection in connections:
            await connection.close()


async def bare_aio_pika(url: str, work: Work, broker: BrokerCpu) -> Round:
    window = Window(broker)
    connections = [await aio_pika.connect(url) for _ in range(work.workers + 1)]
    try:
        setup = await connections[0].channel()
        exchange = await setup.declare_exchange(QUEUE, "direct", durable=True)
        queue = await setup.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": work.queue_type})
        await queue.bind(exchange, "task")

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            window.acked += 1

        for connection in connections[1:]:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            consumer_queue = await channel.get_queue(QUEUE, ensure=False)
            await consumer_queue.consume(handle)
        publisher = await connections[0].channel(publisher_confirms=True)
        target = await publisher.get_exchange(QUEUE, ensure=False)
        mode = aio_pika.DeliveryMode.PERSISTENT if work.persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
        body = b"x" * 256
        await publish_for(work, window, lambda: target.publish(aio_pika.Message(body, delivery_mode=mode), "task"))
        return await finish(window, connections, setup)
    finally:
        for connection in connections:
            await connection.close()


@contextlib.contextmanager
def unmeasured() -> Iterator[None]:
    """The lab's publishers send letters without the ledger's id and timestamp headers, entered nowhere."""
    numbered = iter(range(1, sys.maxsize))

    def letter(outbox: Outbox, exchange: str, routing_key: str, body: bytes, *, persistent: bool, **_: Any) -> Letter:
        properties = Basic.Properties(delivery_mode=2 if persistent else 1)
        return Letter(next(numbered), exchange, routing_key, {}, body, properties, False, False, frozenset())

    measured = Outbox.letter
    Outbox.letter = letter  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        Outbox.letter = measured  # type: ignore[method-assign]


async def lab_unmeasured(settings: Settings, work: Work, broker: BrokerCpu) -> Round:
    with unmeasured():
        return await lab(settings, work, broker, lambda s: sum(c.received for c in s.clients if c.role == "worker"))


def ledger_acked(snapshot: RunSnapshot) -> int:
    return snapshot.ledger.acked


async def lab(
    settings: Settings, work: Work, broker: BrokerCpu, count: Callable[[RunSnapshot], int] = ledger_acked
) -> Round:
    scenario = load(
        "workers",
        [f"duration={work.seconds}", "workers.rate=max", "workers.processing=0ms", f"workers.workers={work.workers}",
         f"workers.producers={work.producers}",
         f"workers.prefetch={PREFETCH}", "workers.publish_mode=confirms", f"workers.queue_type={work.queue_type}",
         f"workers.persistent={work.persistent}".lower()],
    )  # fmt: skip
    samples: list[tuple[float, float, float, int]] = []  # elapsed, CPU seconds, the broker's, messages counted

    def sample(snapshot: RunSnapshot) -> None:
        if snapshot.state == "running":
            samples.append((snapshot.elapsed, time.process_time(), broker(), count(snapshot)))

    run = Run(scenario, settings)
    run.add_listener(sample)
    await run.execute()
    first = next(s for s in samples if s[0] >= WARMUP)
    last = samples[-1]
    counted = max(last[3] - first[3], 1)
    cpu_us = (last[1] - first[1]) * 1e6 / counted if not settings.processes else float("nan")
    return Round(counted / (last[0] - first[0]), cpu_us, (last[2] - first[2]) * 1e6 / counted)


async def measure(
    node: rabbitmq_node.PrivateNode, work: Work, rounds: int, scaling: bool, processes: bool, unmeasured: bool
) -> None:
    settings = build({"amqp_url": node.amqp_url, "management_url": node.management_url, "timeout": 30})
    broker = BrokerCpu(node)
    sides: dict[str, Callable[[], Awaitable[Round]]] = {
        "aiormq": lambda: bare_aiormq(node.amqp_url, work, broker),
        "aio-pika": lambda: bare_aio_pika(node.amqp_url, work, broker),
        "lab": lambda: lab(settings, work, broker),
    }
    if processes:
        spread_out = replace(settings, processes=auto_processes(settings.primary.host))
        sides = {"lab": lambda: lab(settings, work, broker), "lab procs": lambda: lab(spread_out, work, broker)}
    if unmeasured:
        sides["lab unmeasured"] = lambda: lab_unmeasured(settings, work, broker)
    if scaling:
        eight = Work(work.seconds, 8, work.persistent, work.queue_type)
        sides["lab x8"] = lambda: lab(settings, eight, broker)
        sides["aiormq x8"] = lambda: bare_aiormq(node.amqp_url, eight, broker)
    results: dict[str, list[Round]] = {name: [] for name in sides}
    loads: list[float] = []
    for n in range(rounds):
        order = list(sides) if n % 2 == 0 else list(reversed(sides))
        for name in order:
            results[name].append(await sides[name]())
        loads.append(os.getloadavg()[0])
        shown = "  ".join(f"{name} {results[name][-1].rate:7,.0f}" for name in sides)
        print(f"  round {n + 1}: {shown} msg/s   load {loads[-1]:.2f}", flush=True)

    kind = "persistent" if work.persistent else "transient"
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"\nRabbitMQ {node.version}, every side on {loop}'s event loop, {work.queue_type} queue, "
        f"{work.producers} producer(s), {work.workers} worker(s), prefetch {PREFETCH}, "
        f"confirms ({WINDOW} in flight), {kind}; {rounds} rounds of {work.seconds:g} s, min / median / max"
    )
    width = max(map(len, results))
    print(f"  {'':{width}} {'acked msg/s':>26}   {'client CPU µs per message':>28}   {'broker CPU µs per message':>28}")
    for name, rounds_of in results.items():
        cpu = [r.cpu_us for r in rounds_of if not math.isnan(r.cpu_us)]
        shown_cpu = spread(cpu, 1) if cpu else "over processes: not taken"
        shown_broker = spread([r.broker_us for r in rounds_of], 1)
        print(f"  {name:{width}} {spread([r.rate for r in rounds_of]):>26}   {shown_cpu:>28}   {shown_broker:>28}")

    def ratio(a: str, b: str, of: Callable[[Round], float]) -> str:
        return spread([of(x) / of(y) for x, y in zip(results[a], results[b], strict=True)], 2)

    print("  ratios, round by round (min / median / max):")
    if processes:
        spread_ratio = ratio("lab procs", "lab", lambda r: r.rate)
        print(f"    throughput lab procs ({spread_out.processes}) / lab in one  {spread_ratio}")
        # Spread over processes, the clients can use at most what the broker leaves of the machine's cores.
        cores = os.cpu_count() or 1
        ceiling = spread([cores * 1e6 / (r.cpu_us + r.broker_us) / r.rate for r in results["lab"]], 2)
        print(f"    the machine's ceiling for that: {cores} cores / (client + broker CPU per message in one), "
              f"against the rate in one  {ceiling}")  # fmt: skip
    else:
        print(f"    throughput lab/aiormq   {ratio('lab', 'aiormq', lambda r: r.rate)}")
        print(f"    throughput lab/aio-pika {ratio('lab', 'aio-pika', lambda r: r.rate)}")
        print(f"    CPU per message lab/aiormq {ratio('lab', 'aiormq', lambda r: r.cpu_us)}")
    if unmeasured:
        print(f"    throughput lab unmeasured/aiormq {ratio('lab unmeasured', 'aiormq', lambda r: r.rate)}")
        print(f"    CPU per message lab unmeasured/aiormq {ratio('lab unmeasured', 'aiormq', lambda r: r.cpu_us)}")
    if scaling:
        print(f"    throughput lab x8 / lab x{work.workers}  {ratio('lab x8', 'lab', lambda r: r.rate)}")
        print(f"    throughput aiormq x8 / aiormq x{work.workers}  {ratio('aiormq x8', 'aiormq', lambda r: r.rate)}")
    print(f"  load average (1 min) at the rounds' ends: {spread(loads, 2)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--queue-type", choices=("classic", "quorum"), default="classic", help="for every side")
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    parser.add_argument("--transient", action="store_true", help="non-persistent messages (the broker does less)")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--scaling", action="store_true", help="also the lab with 8 workers, against --workers")
    shown.add_argument(
        "--processes", action="store_true", help="the lab with --processes auto against one process (only)"
    )
    shown.add_argument("--unmeasured", action="store_true", help="also the lab with its per-message measurement off")
    args = parser.parse_args()
    clients = max(2, args.workers) if args.processes else args.workers
    work = Work(args.seconds, clients, not args.transient, args.queue_type, 2 if args.processes else 1)
    node = rabbitmq_node.start("amqplab-bench@localhost", args.version)
    try:
        event_loop.run(measure(node, work, args.rounds, args.scaling, args.processes, args.unmeasured))
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
