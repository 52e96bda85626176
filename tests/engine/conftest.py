"""Running scenarios against the private node, and checking that nothing of a run stays behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load

from tests.conftest import wait_for


async def lab_objects(settings: Settings, run_id: str) -> list[str]:
    """Queues and exchanges of the run that the management API still lists."""
    async with ManagementClient(settings) as management:
        queues, _ = await management.queues(settings.vhost, name=rf"^lab\.{run_id}\.")
        exchanges = await management.exchanges(settings.vhost)
    return [q.name for q in queues] + [e.name for e in exchanges if e.name.startswith(f"lab.{run_id}.")]


async def nothing_left(settings: Settings, run_id: str) -> list[str]:
    """What the management API still lists of the run, once it has had time to say it is gone: an exclusive queue
    (the run's lease) is deleted as its connection closes, and a busy node lists it for a moment after."""
    left: list[str] = []

    async def gone() -> bool:
        left[:] = await lab_objects(settings, run_id)
        return not left

    with contextlib.suppress(AssertionError):
        await wait_for(gone, timeout=15, what="the run's objects gone from the listing")
    return left


async def run_scenario(
    settings: Settings,
    source: str,
    *overrides: str,
    listener: Callable[[RunSnapshot], None] | None = None,
) -> tuple[Run, RunSnapshot]:
    """Run to the end, then assert the broker holds nothing of the run."""
    run = Run(load(source, overrides), settings)
    if listener is not None:
        run.add_listener(listener)
    final = await run.execute()
    assert final.state == "finished"
    assert run.leftovers == []
    assert await nothing_left(settings, run.run_id) == []
    return run, final


def client(snapshot: RunSnapshot, name: str):
    return next(c for c in snapshot.clients if c.name == name)


async def crashed_run(settings: Settings, source: str, *overrides: str) -> Run:
    """A run that declared its topology and died: every connection dropped, nothing deleted, nobody reconnecting."""
    run = Run(load(source, overrides), settings)
    await run.start()
    for c in run.roster.clients.values():
        await c.close()
    for task in run._tasks:
        task.cancel()
    admin, run._admin = run._admin, None
    assert admin is not None
    await admin.close()
    broadcast = run._broadcast._task  # it has a connection of its own: a dead process takes it along, unsaid
    assert broadcast is not None
    broadcast.cancel()
    await asyncio.gather(broadcast, return_exceptions=True)
    await run._broadcast._drop_connection()
    return run
