"""`amqp-lab cleanup`: remove what crashed runs left on the broker, sparing runs that are still going.

Every run holds an exclusive `lab.<run-id>.lease` queue for as long as it is
connected; a run whose lease is gone is over, and its `lab.<run-id>.` queues and
exchanges are leftovers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import aiormq.exceptions

from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings
from amqp_lab.engine.run import LEASE
from amqp_lab.scenario.patterns import RUN_PREFIX


@dataclass(frozen=True)
class Leftovers:
    queues: tuple[str, ...]
    exchanges: tuple[str, ...]
    live_runs: tuple[str, ...]  # runs still connected: left alone


def run_id_of(name: str) -> str | None:
    if not name.startswith(RUN_PREFIX):
        return None
    run_id, dot, _rest = name[len(RUN_PREFIX) :].partition(".")
    return run_id if dot and run_id else None


async def find_leftovers(settings: Settings) -> Leftovers:
    async with ManagementClient(settings) as management:
        queues, _total = await management.queues(settings.vhost, name=r"^lab\.", limit=100_000)
        exchanges = await management.exchanges(settings.vhost)
    live = {run_id_of(q.name) for q in queues if q.name.endswith(f".{LEASE}")}
    live.discard(None)

    def dead(name: str) -> bool:
        run_id = run_id_of(name)
        return run_id is not None and run_id not in live

    return Leftovers(
        tuple(sorted(q.name for q in queues if dead(q.name))),
        tuple(sorted(e.name for e in exchanges if dead(e.name))),
        tuple(sorted(run_id for run_id in live if run_id)),
    )


async def remove(settings: Settings, leftovers: Leftovers) -> list[str]:
    """Delete the leftovers over AMQP; what was removed, as `queue NAME` / `exchange NAME`."""
    removed: list[str] = []
    connection = await connect_first(settings)
    try:
        channel = await connection.channel()
        objects = [("queue", q) for q in leftovers.queues] + [("exchange", e) for e in leftovers.exchanges]
        for kind, name in objects:
            delete = channel.queue_delete if kind == "queue" else channel.exchange_delete
            try:
                await delete(name)
                removed.append(f"{kind} {name}")
            except aiormq.exceptions.AMQPError:  # gone meanwhile, or in use: the channel is closed, take another
                channel = await connection.channel()
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
    return removed
