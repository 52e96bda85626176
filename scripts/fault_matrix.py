#!/usr/bin/env python3
"""The fault matrix: every pattern under each fault, and what the ledger said afterwards.

On one private RabbitMQ node, for each fault in turn, seven runs go at once (each
pattern, reliable and not) for about 25 s, the fault strikes after 5 s:
  restart  the broker stops (rabbitmqctl stop_app) and starts again
  cut      the link is reset (a proxy of our own between the lab and the broker)
  stall    the link passes nothing for 12 s, nothing is closed: only heartbeats tell
  slow     every chunk is held 100 ms for 8 s
Prints a Markdown table: what the lab showed (outage, reconnects), and the ledger's
lost, duplicates, publishes sent again and lost, RPC timeouts.

    .venv/bin/python scripts/fault_matrix.py [--version 4.0] [--heartbeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rabbitmq_node
from amqp_lab.config import build
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load
from fault_proxy import FaultProxy

RUNS = {
    "workers (durable, persistent, confirms)": ("workers", "workers.rate=40", "workers.processing=5ms"),
    "workers (non-persistent, no confirms)": (
        "workers", "workers.rate=50", "workers.workers=1", "workers.processing=100ms",
        "workers.persistent=false", "workers.publish_mode=none",
    ),
    "rpc (non-persistent requests)": ("rpc", "rpc.rate=10", "rpc.unroutable=0"),
    "map-reduce (wait-for-all)": ("map-reduce", "map-reduce.policy=wait-for-all", "map-reduce.rate=10"),
    "map-reduce (deadline)": ("map-reduce", "map-reduce.rate=10"),
    "pub-sub (reliable)": ("pub-sub", "pub-sub.rate=10"),
    "pub-sub (not reliable)": ("pub-sub", "pub-sub.rate=10", "pub-sub.reliable=false"),
}  # fmt: skip
FAULT_AT = 5.0
RUN_FOR = 25.0


async def strike(fault: str, node: rabbitmq_node.PrivateNode, proxy: FaultProxy) -> None:
    if fault == "restart":
        await asyncio.to_thread(node.stop_app)
        await asyncio.to_thread(node.start_app)
    elif fault == "cut":
        proxy.cut()
    elif fault == "stall":
        proxy.stall()
        await asyncio.sleep(12)
        proxy.heal()
    else:
        proxy.slow(0.1)
        await asyncio.sleep(8)
        proxy.heal()


Outcome = dict[str, tuple[RunSnapshot, float]]  # per run: the last snapshot and the longest outage seen


async def one_fault(fault: str, node: rabbitmq_node.PrivateNode, heartbeat: int) -> Outcome:
    proxy = FaultProxy(node.amqp_port)
    await proxy.start()
    url = node.amqp_url if fault == "restart" else proxy.url_for(node.amqp_url)
    settings = build({"amqp_url": url, "management_url": node.management_url, "timeout": 3, "heartbeat": heartbeat})
    runs = {name: Run(load(source, [f"duration={RUN_FOR}", *rest]), settings) for name, (source, *rest) in RUNS.items()}
    longest = dict.fromkeys(runs, 0.0)

    def watch(name: str, snapshot: RunSnapshot) -> None:
        if snapshot.outage is not None:
            longest[name] = max(longest[name], snapshot.outage)

    for name, run in runs.items():
        run.add_listener(lambda snapshot, name=name: watch(name, snapshot))
    await asyncio.gather(*(run.start() for run in runs.values()))
    started = time.monotonic()
    await asyncio.sleep(FAULT_AT)
    await strike(fault, node, proxy)
    await asyncio.sleep(max(0.0, RUN_FOR - (time.monotonic() - started)))
    await asyncio.gather(*(run.stop() for run in runs.values()))
    await proxy.close()
    return {name: (run.last, longest[name]) for name, run in runs.items() if run.last is not None}


def row(fault: str, name: str, s: RunSnapshot, outage: float) -> str:
    c = s.counters
    shown = f"RECONNECTING {outage:.1f} s, {c.get('reconnects', 0)} reconnects" if outage else "no outage"
    if fault == "slow":
        delivery = s.latency_total.get("delivery") or s.latency_total.get("rpc") or s.latency_total.get("job")
        shown += f"; latency max {delivery.max:.0f} ms" if delivery else ""
    return (
        f"| {fault} | {name} | {shown} | {s.ledger.lost} | {s.ledger.duplicates} | {c.get('republished', 0)} "
        f"| {c.get('publishes_lost', 0)} | {c.get('timeouts', 0)} | {s.ledger.published} |"
    )


async def matrix(node: rabbitmq_node.PrivateNode, heartbeat: int) -> None:
    print(f"RabbitMQ {node.version}, heartbeat {heartbeat} s, runs of {RUN_FOR:g} s, fault at {FAULT_AT:g} s\n")
    columns = ("fault", "pattern", "the lab showed", "lost", "duplicates", "sent again", "publishes lost")
    columns += ("RPC timeouts", "published")
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for fault in ("restart", "cut", "stall", "slow"):
        for name, (snapshot, outage) in (await one_fault(fault, node, heartbeat)).items():
            print(row(fault, name, snapshot, outage), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=rabbitmq_node.VERSIONS, default="3.10")
    parser.add_argument("--heartbeat", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the table says what happened; aiormq's warnings would not
    node = rabbitmq_node.start("amqplab-faults@localhost", args.version)
    try:
        asyncio.run(matrix(node, args.heartbeat))
    finally:
        rabbitmq_node.stop(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
