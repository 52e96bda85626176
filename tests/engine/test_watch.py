"""A run's broadcast and its watchers, on every broker: what a watcher shows is what the run showed, and neither
leaves anything on the broker."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from amqp_lab.broker.management import ManagementClient
from amqp_lab.config import Settings
from amqp_lab.engine.agent import CONTROL
from amqp_lab.engine.run import Run
from amqp_lab.engine.watch import Watch, Watcher
from amqp_lab.scenario.files import load

from tests.conftest import wait_for
from tests.engine.conftest import nothing_left


async def broker_names(settings: Settings) -> tuple[list[str], list[str]]:
    async with ManagementClient(settings) as management:
        queues, _ = await management.queues(settings.vhost)
        exchanges = await management.exchanges(settings.vhost)
    return [q.name for q in queues], [e.name for e in exchanges]


@pytest.mark.embedded
async def test_a_watcher_shows_what_the_run_showed_from_its_first_snapshot_to_its_end(settings: Settings) -> None:
    queues_before, exchanges_before = await broker_names(settings)
    assert CONTROL not in exchanges_before
    watching = replace(settings, read_only=True)  # a watcher only looks
    published: list[int] = []

    def changed(watch: Watch) -> None:
        if watch.latest is not None and (not published or watch.latest.ledger.published != published[-1]):
            published.append(watch.latest.ledger.published)

    watcher = Watcher(watching, None, changed)
    elsewhere = Watcher(watching, "ffffff", lambda _: None)  # waits for a run that never comes
    tasks = [asyncio.create_task(watcher.run()), asyncio.create_task(elsewhere.run())]
    try:
        await wait_for(lambda: "none is broadcasting yet" in watcher.watch.status, what="the watcher waiting")
        run = Run(load("workers", ["duration='5s'", "workers.rate=40"]), settings)
        final = await run.execute()
        await wait_for(lambda: watcher.watch.ended is not None, what="the watcher told the run ended")
        watched = watcher.watch
        assert watched.run is not None and watched.run.run_id == run.run_id
        assert watched.run.scenario == run.scenario and watched.run.broker == settings.primary.display()
        assert watched.ended is not None and watched.ended.snapshot is not None
        assert watched.ended.snapshot.state == "finished"
        assert watched.ended.snapshot.ledger == final.ledger  # the figures the run itself ended with
        assert watched.ended.report is not None and watched.ended.report["passed"] is True
        assert watched.ended.leftovers == ()
        assert len(published) >= 5 and published == sorted(published)  # followed as the figures grew
        assert published[-1] == final.ledger.published > 0
        assert elsewhere.watch.run is None and "waiting for run ffffff" in elsewhere.watch.status
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert await nothing_left(settings, run.run_id) == []

    async def as_before() -> bool:  # the watchers' queues and the control exchange go with their connections
        return await broker_names(settings) == (queues_before, exchanges_before)

    await wait_for(as_before, timeout=15, what="the broker as it was before the run and its watchers")
