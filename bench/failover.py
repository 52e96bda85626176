#!/usr/bin/env python3
"""How long a node failure stops a reliable workers run: quorum queue against classic queue, in one run.

On a private three-node RabbitMQ cluster (scripts/rabbitmq_cluster.py), a workers run
(durable, persistent, confirms, `--rate` tasks/s, clients connected to node 2 first,
whose node is also the queue's: declared through it) has node 2's broker stopped once
tasks flow. Failover time: from the stop command to acks flowing again (every client
connected again, and the acked count 10 past where it was when connections broke).
The quorum queue elects a new leader on a node still up; the classic queue can only
wait for its node, which is started again after `--down` seconds. Each round also says
what the ledger lost (target: 0 for both).

    .venv/bin/python bench/failover.py [--rounds 3] [--rate 200] [--down 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import rabbitmq_cluster
from amqp_lab.config import build
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load

FLOWING_AGAIN = 10  # acks past the count when the connections broke, with every client back


def broken(snapshot: RunSnapshot) -> bool:
    """The run or one of its clients is reconnecting."""
    return snapshot.outage is not None or any(c.state == "reconnecting" for c in snapshot.clients)


async def failover(
    cluster: rabbitmq_cluster.PrivateCluster, queue_type: str, rate: int, down: float
) -> tuple[float, int]:
    """Seconds from stopping node 2 to acks flowing again, and what the run lost in the end."""
    nodes = [cluster.node(2), cluster.node(1), cluster.node(3)]
    settings = build(
        {
            "amqp_url": ",".join(node.amqp_url for node in nodes),
            "management_url": cluster.management_url,
            "heartbeat": 2,
        }
    )
    scenario = load("workers", ["duration=40s", f"workers.rate={rate}", f"workers.queue_type='{queue_type}'"])
    run = Run(scenario, settings)
    seen: list[RunSnapshot] = []
    run.add_listener(seen.append)
    finished = asyncio.Event()
    execution = asyncio.create_task(run.execute(stop=finished))
    while not seen or seen[-1].ledger.acked < rate:  # a second of work done
        await asyncio.sleep(0.1)
    stopped = time.monotonic()
    stopping = asyncio.create_task(asyncio.to_thread(cluster.stop_node, 2))
    while not broken(seen[-1]):  # stop_app takes a moment before connections close
        await asyncio.sleep(0.05)
    acked_when_broken = seen[-1].ledger.acked
    restarting: asyncio.Task[None] | None = None
    while broken(seen[-1]) or seen[-1].ledger.acked < acked_when_broken + FLOWING_AGAIN:
        if restarting is None and stopping.done() and time.monotonic() - stopped >= down:
            restarting = asyncio.create_task(asyncio.to_thread(cluster.start_node, 2))
        await asyncio.sleep(0.05)
    took = time.monotonic() - stopped
    await stopping
    if restarting is None:
        await asyncio.sleep(max(0.0, down - (time.monotonic() - stopped)))
        restarting = asyncio.create_task(asyncio.to_thread(cluster.start_node, 2))
    await restarting
    finished.set()
    final = await execution
    return took, final.ledger.lost


async def main() -> int:
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)  # each refused reconnect attempt would log a traceback
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200, help="tasks per second (default: %(default)s)")
    parser.add_argument("--down", type=float, default=10.0, help="seconds node 2 stays down (default: %(default)s)")
    args = parser.parse_args()
    print("starting a three-node RabbitMQ 3.10 cluster ...", flush=True)
    cluster = rabbitmq_cluster.start(prefix="amqplab-bench")
    try:
        times: dict[str, list[float]] = {"quorum": [], "classic": []}
        for round_number in range(1, args.rounds + 1):
            for queue_type in times:
                took, lost = await failover(cluster, queue_type, args.rate, args.down)
                times[queue_type].append(took)
                print(f"round {round_number}  {queue_type:8} acks again {took:6.2f} s after the stop   lost {lost}")
    finally:
        rabbitmq_cluster.stop(cluster)
    quorum, classic = (statistics.median(times[kind]) for kind in ("quorum", "classic"))
    print(f"\nmedian failover: quorum {quorum:.2f} s, classic {classic:.2f} s (node down {args.down:g} s)")
    print(f"quorum / classic: {quorum / classic:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
