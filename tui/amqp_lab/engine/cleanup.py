"""`amqp-lab cleanup`: remove what crashed runs left on the broker, sparing runs that are still going and
anything the lab cannot prove it declared.

A queue or exchange is a run's leftover only when all of these hold: its name is
`lab.<run-id>.…` with a run id of the lab's own form (six hex digits), it carries
the argument `amqp-lab-run` with that run id (every run sets it on what it
declares), and the run is over (its exclusive `lab.<run-id>.lease` queue, held
for as long as the run is connected, is gone). A user's `lab.billing.invoices`
fails the first test; a queue that only copies the lab's names fails the second.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiormq.exceptions

from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings
from amqp_lab.engine.run import LEASE
from amqp_lab.scenario.patterns import RUN_MARKER, RUN_PREFIX

RUN_ID = re.compile(r"[0-9a-f]{6}")  # secrets.token_hex(3), as a Run names itself


@dataclass(frozen=True)
class Leftover:
    kind: str  # "queue" or "exchange"
    name: str
    messages: int = 0  # a queue's messages, deleted with it

    def __str__(self) -> str:
        held = f" ({self.messages} message{'s' if self.messages != 1 else ''})" if self.messages else ""
        return f"{self.kind} {self.name}{held}"


@dataclass(frozen=True)
class Leftovers:
    found: tuple[Leftover, ...]
    live_runs: tuple[str, ...]  # runs still connected: left alone
    foreign: tuple[str, ...]  # named lab.* but not marked as a run's: never touched

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(x.name for x in self.found if x.kind == "queue")

    @property
    def exchanges(self) -> tuple[str, ...]:
        return tuple(x.name for x in self.found if x.kind == "exchange")

    @property
    def messages(self) -> int:
        return sum(x.messages for x in self.found)


def run_id_of(name: str) -> str | None:
    """The run id in a name of the lab's form `lab.<run-id>.…`, else None."""
    if not name.startswith(RUN_PREFIX):
        return None
    run_id, dot, rest = name[len(RUN_PREFIX) :].partition(".")
    return run_id if dot and rest and RUN_ID.fullmatch(run_id) else None


def marked_by_run(name: str, arguments: Mapping[str, Any]) -> str | None:
    """The run that declared this object, when its name and its marker agree; else None."""
    run_id = run_id_of(name)
    return run_id if run_id is not None and arguments.get(RUN_MARKER) == run_id else None


async def find_leftovers(settings: Settings) -> Leftovers:
    async with ManagementClient(settings) as management:
        queues = await management.queues_with_arguments(settings.vhost, name=rf"^{re.escape(RUN_PREFIX)}")
        exchanges = await management.exchanges(settings.vhost)
    live = {
        run_id for q in queues if (run_id := marked_by_run(q.name, q.arguments)) and q.name == f"lab.{run_id}.{LEASE}"
    }
    found: list[Leftover] = []
    foreign: list[str] = []
    objects = [("queue", q.name, q.arguments, q.messages) for q in queues]
    objects += [("exchange", e.name, e.arguments, 0) for e in exchanges if e.name.startswith(RUN_PREFIX)]
    for kind, name, arguments, messages in objects:
        run_id = marked_by_run(name, arguments)
        if run_id is None:
            foreign.append(f"{kind} {name}")
        elif run_id not in live:
            found.append(Leftover(kind, name, messages))
    found.sort(key=lambda x: (x.kind != "queue", x.name))
    return Leftovers(tuple(found), tuple(sorted(live)), tuple(foreign))


async def remove(settings: Settings, leftovers: Leftovers) -> list[str]:
    """Delete the leftovers over AMQP; what was removed, as `queue NAME (N messages)` / `exchange NAME`."""
    removed: list[str] = []
    connection = await connect_first(settings)
    try:
        channel = await connection.channel()
        for leftover in leftovers.found:
            delete = channel.queue_delete if leftover.kind == "queue" else channel.exchange_delete
            try:
                await delete(leftover.name)
                removed.append(str(leftover))
            except aiormq.exceptions.AMQPError:  # gone meanwhile, or in use: the channel is closed, take another
                channel = await connection.channel()
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
    return removed
