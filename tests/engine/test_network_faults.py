"""Network faults between the lab and the broker, through a proxy of our own: a cut link, a stalled one (only the
heartbeat can tell) and a slow one. The lab notices each within its heartbeat setting, says so, and recovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import aio_pika
import aiormq
import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.clients import base
from amqp_lab.engine.clients.base import LINK_GRACE
from amqp_lab.engine.clients.producers import Publisher
from amqp_lab.engine.run import Run
from amqp_lab.scenario.files import load
from fault_proxy import FaultProxy
from rabbitmq_node import VERSIONS, PrivateNode

from tests.conftest import deadline, settings_for, wait_for
from tests.engine.conftest import nothing_left

HEARTBEAT = 1
# aiormq gives up on a connection after 3 x (heartbeat + 1) seconds without a frame; it checks each second.
DETECTION_LIMIT = 3 * (HEARTBEAT + 1) + 2


class Link(NamedTuple):
    proxy: FaultProxy
    settings: Settings  # the broker through the proxy, with a heartbeat of HEARTBEAT


@pytest.fixture
async def link(rabbit: PrivateNode) -> AsyncIterator[Link]:
    """The lab's way to the broker through a proxy that cuts, stalls or slows it; closed after the test's runs."""
    if rabbit.version != VERSIONS[0]:
        pytest.skip("the client side is under test here: one broker version is enough")
    proxy = FaultProxy(rabbit.amqp_port)
    await proxy.start()
    try:
        yield Link(
            proxy, settings_for(rabbit, amqp_url=proxy.url_for(rabbit.amqp_url), heartbeat=HEARTBEAT, timeout=2.0)
        )
    finally:
        await proxy.close()


def clients_of(run: Run) -> str:
    """What a failure message says of the run's clients: whether producers hold, each client's state, and where a
    recovery that has not ended is waiting."""
    held = "" if run.ctx.consumers_up.is_set() else f"producers hold for {sorted(run.ctx.consumers_down)}; "
    said = held + "clients: " + ", ".join(f"{c.name} {c.state} {c.detail}".rstrip() for c in run.snapshot().clients)
    for client in run.roster.clients.values():
        recovery = client._recovery
        if recovery is not None and not recovery.done():
            frames = [f"{f.f_code.co_name}:{f.f_lineno}" for f in recovery.get_stack(limit=8)]
            said += f"; {client.name} recovering at {' > '.join(frames)}"
    return said


async def map_reduce_going(settings: Settings, *overrides: str) -> tuple[Run, Callable[[], int]]:
    """A map-reduce run through the proxy with its first jobs done; and how many results have come back."""
    jobs = Run(load("map-reduce", ["duration=120", "map-reduce.rate=20", *overrides]), settings)
    await jobs.start()
    done = lambda: jobs.snapshot().counters.get("results_returned", 0)  # noqa: E731
    try:
        await wait_for(lambda: done() >= 3, timeout=30, what="jobs done")
    except BaseException:
        await jobs.stop()
        raise
    return jobs, done


@pytest.mark.timeout(120)
async def test_cut_stalled_and_slow_links_are_noticed_and_survived(link: Link) -> None:
    proxy, settings = link
    run = Run(load("workers", ["duration=120", "workers.rate=40", "workers.processing=5ms"]), settings)
    # Alongside, the other reliable mode whose answers travel back: shard results lost with a link must come again.
    jobs = Run(load("map-reduce", ["duration=120", "map-reduce.policy=wait-for-all", "map-reduce.rate=5"]), settings)
    await asyncio.gather(run.start(), jobs.start())
    try:
        acked = lambda: run.snapshot().ledger.acked  # noqa: E731
        down = lambda: run.snapshot().outage is not None  # noqa: E731

        async def recovers() -> None:
            await wait_for(
                lambda: not down(), timeout=30, what="the run to have the broker back", explain=lambda: clients_of(run)
            )
            resumed_from = acked()
            await wait_for(
                lambda: acked() >= resumed_from + 10,
                timeout=30,
                what="acks to flow again",
                explain=lambda: clients_of(run),
            )

        await wait_for(lambda: acked() >= 10, timeout=30)

        proxy.cut()  # a reset is noticed at once
        await wait_for(down, timeout=2, what="the cut to be noticed")
        await recovers()

        proxy.stall()  # nothing is closed: only missing heartbeats tell
        stalled_at = time.monotonic()
        await wait_for(down, timeout=DETECTION_LIMIT + 1, what="the stall to be noticed")
        noticed_after = time.monotonic() - stalled_at
        assert noticed_after <= deadline(DETECTION_LIMIT)  # aiormq's timer fires late on a loaded machine
        proxy.heal()
        await recovers()

        proxy.slow(0.1)  # slow, not broken: no reconnect, latency shows it
        outages = run.snapshot().counters["broker_outages"]
        await wait_for(
            lambda: (p := run.snapshot().latency.get("delivery")) is not None and p.p50 >= 100,
            timeout=20,
            what="the delivery latency to show the slow link",
        )
        assert run.snapshot().counters["broker_outages"] == outages
        proxy.heal()

        def settled(each: Run) -> bool:
            snapshot = each.snapshot()
            return snapshot.outage is None and all(c.state != "reconnecting" for c in snapshot.clients)

        # Stopped mid-reconnect, a run cannot send again what was not confirmed (a loaded machine reconnects slowly):
        # give both runs the time to have every client back. One seen still reconnecting after that is judged by
        # the figures below, as a run stopped then would be.
        states = ""
        try:
            await wait_for(lambda: settled(run) and settled(jobs), what="both runs back with every client")
        except AssertionError:
            states = f"{clients_of(run)}; {clients_of(jobs)}"
    finally:
        await asyncio.gather(run.stop(), jobs.stop())

    for each in (run, jobs):
        final = each.last
        assert final is not None
        assert final.counters["broker_outages"] == 2
        reasons = [e.text for e in final.events if e.kind == "disconnect" and e.client == "run"]
        assert len(reasons) == 2
        # Durable queues, persistent messages, confirms: publishers sent again what was not confirmed.
        said = [
            f"{e.at:.1f} {e.client} {e.kind}: {e.text}" for e in final.events if e.kind in ("disconnect", "restart")
        ]
        assert final.ledger.lost == 0, "\n".join([final.pattern, repr(final.ledger), states, *said])
        assert each.leftovers == [] and await nothing_left(settings, each.run_id) == []
    assert jobs.last is not None and jobs.last.counters["pending_jobs"] == 0


@pytest.mark.timeout(120)
async def test_a_close_aio_pika_reports_late_is_still_a_lost_link(link: Link, monkeypatch: Any) -> None:
    """aiormq closes a dead connection and its channels at once; aio-pika runs the close callbacks later, over a
    second on a busy machine. Publishes meanwhile fail on a closed channel: that is the link, not the client."""
    tell = aio_pika.Connection._on_connection_close

    async def late(self: aio_pika.Connection, closing: asyncio.Future[Any]) -> None:
        await asyncio.sleep(2 * LINK_GRACE)
        await tell(self, closing)

    monkeypatch.setattr(aio_pika.Connection, "_on_connection_close", late)
    proxy, settings = link
    run = Run(load("workers", ["duration=120", "workers.rate=100", "workers.processing=5ms"]), settings)
    await run.start()
    try:
        acked = lambda: run.snapshot().ledger.acked  # noqa: E731
        await wait_for(lambda: acked() >= 10, timeout=30, what="tasks flowing")
        proxy.stall()  # found by the heartbeat: aiormq cancels what waits, then closes
        await wait_for(lambda: run.snapshot().outage is not None, timeout=DETECTION_LIMIT + 2, what="the stall seen")
        proxy.heal()
        await wait_for(lambda: run.snapshot().counters.get("broker_outages") == 1, timeout=30, what="the broker back")
        resumed_from = acked()
        await wait_for(
            lambda: acked() >= resumed_from + 10, timeout=30, what="acks to flow again", explain=lambda: clients_of(run)
        )
        failed = [f"{c.name}: {c.detail}" for c in run.snapshot().clients if c.state == "failed"]
        assert failed == []
    finally:
        await run.stop()
    final = run.last
    assert final is not None and final.ledger.lost == 0, final.ledger
    assert final.counters["republished"] > 0  # the publishes that met the closed channel went again


@pytest.mark.timeout(120)
async def test_a_publish_stuck_in_the_client_library_goes_again_once_the_link_is_back(
    link: Link, monkeypatch: Any
) -> None:
    """aiormq can leave a publish waiting forever on a dead connection (for room in its write queue, its writer
    gone): a map-reduce submitter, which sends one job at a time, stopped for the rest of the run. When the link
    goes, a publish still in flight is let go and sent again on the new connection."""
    publish = aiormq.Channel.basic_publish
    stuck = 0

    async def never_returns(self: aiormq.Channel, *args: Any, **kwargs: Any) -> Any:
        nonlocal stuck
        # The submitter's next job hangs, as on a dead link; every later publish goes through.
        if stuck == 0 and kwargs.get("exchange", "").endswith(".jobs"):
            stuck += 1
            await asyncio.Event().wait()
        return await publish(self, *args, **kwargs)

    proxy, settings = link
    jobs, done = await map_reduce_going(settings, "map-reduce.policy=wait-for-all")
    try:
        monkeypatch.setattr(aiormq.Channel, "basic_publish", never_returns)
        await wait_for(lambda: stuck == 1, timeout=10, what="a publish stuck")
        proxy.cut()
        await wait_for(lambda: jobs.snapshot().counters.get("broker_outages") == 1, timeout=30, what="the link back")
        resumed_from = done()
        await wait_for(
            lambda: done() >= resumed_from + 5, timeout=30, what="jobs to go on", explain=lambda: clients_of(jobs)
        )
    finally:
        await jobs.stop()
    final = jobs.last
    assert final is not None and final.ledger.lost == 0, final.ledger
    assert final.counters["republished"] >= 1 and final.counters["pending_jobs"] == 0


@pytest.mark.timeout(120)
async def test_a_publish_due_while_the_channel_reopens_waits_for_the_new_one(link: Link, monkeypatch: Any) -> None:
    """A producer paced slowly is due to send while its recovery has a new connection but not yet the channel on
    it: the publish waits for the new channel. It used to take the old one, closed: the task was counted lost (here)
    or, when the close was told late, the producer failed (the stalled-link test in CI)."""
    reopen = Publisher._open
    slowed = False

    async def slow_reopen(self: Publisher) -> None:
        if slowed:  # the reconnect's channel: open it late, so the producer's next send falls due meanwhile
            await asyncio.sleep(3.0)
        await reopen(self)

    monkeypatch.setattr(Publisher, "_open", slow_reopen)
    proxy, settings = link
    run = Run(load("workers", ["duration=120", "workers.rate=0.5", "workers.workers=1"]), settings)
    await run.start()
    try:
        published = lambda: run.snapshot().ledger.published  # noqa: E731
        await wait_for(lambda: run.snapshot().ledger.confirmed >= 1, timeout=30, what="the first task confirmed")
        slowed = True
        proxy.cut()
        await wait_for(
            lambda: published() >= 3, timeout=30, what="tasks sent after the cut", explain=lambda: clients_of(run)
        )
        assert [c.state for c in run.snapshot().clients if c.name == "producer-1"] == ["running"]
    finally:
        await run.stop()
    final = run.last
    assert final is not None and final.ledger.lost == 0, final.ledger


@pytest.mark.timeout(120)
async def test_a_publish_woken_as_its_new_link_is_lost_waits_for_the_next_one(link: Link, monkeypatch: Any) -> None:
    """A recovery wakes the publishes waiting for it; when the new link is lost before they run (its close told
    first), they must wait for the next link. They took the channel of the link just lost, where aiormq can leave a
    publish waiting forever, past the reach of `lost`, and the run's stop counted it lost."""
    _, settings = link
    run = Run(load("workers", ["duration=120", "workers.rate=0.5", "workers.workers=1"]), settings)
    await run.start()
    producer = run.roster.clients["producer-1"]
    assert isinstance(producer, Publisher) and producer._channel is not None and producer._outbox is not None
    first_link = producer.connection
    first_channel = await producer._channel.get_underlay_channel()
    publish = aiormq.Channel.basic_publish

    async def hangs_on_the_first_link(self: aiormq.Channel, *args: Any, **kwargs: Any) -> Any:
        if self is first_channel:
            await asyncio.Event().wait()  # as a publish on a dead link's write queue
        return await publish(self, *args, **kwargs)

    monkeypatch.setattr(aiormq.Channel, "basic_publish", hangs_on_the_first_link)
    letter = producer._outbox.letter(producer.spec.exchange, producer.spec.routing_keys[0], b"woken", persistent=True)
    producer._online.clear()  # a recovery under way: the publish waits for it
    delivery = asyncio.ensure_future(producer._deliver(letter, reliable=True))
    try:
        await asyncio.sleep(0)  # its first step, to the wait (the loop runs ready tasks in order)
        producer._online.set()  # recovered, and in the same step the link is lost again, before the publish runs
        producer.lost(ConnectionError("lost again at once"))
        await wait_for(delivery.done, timeout=30, what="the woken publish answered", explain=lambda: clients_of(run))
        assert delivery.result() == "confirmed"
    finally:
        delivery.cancel()
        await run.stop()
        if first_link is not None:
            await first_link.close()
    final = run.last
    assert final is not None and final.ledger.lost == 0, final.ledger


@pytest.mark.timeout(120)
async def test_a_reconnect_attempt_cancelled_by_the_client_library_is_tried_again(link: Link, monkeypatch: Any) -> None:
    """aiormq cancels what waits on a connection it closes, a connect in progress included: the CancelledError left
    the recovery, which ended with its client shown "reconnecting" for good (a map-reduce submitter in the full
    suite: one job in 100 s). An attempt cancelled that way is a failed attempt, tried again."""
    connect = base.connect_first
    cancelled = 0

    async def cancelled_once(settings: Settings, name: str = "") -> Any:
        nonlocal cancelled
        if name.endswith("submitter-1") and cancelled == 0:
            cancelled += 1
            raise asyncio.CancelledError  # as aiormq's, not a cancel of the recovery task
        return await connect(settings, name)

    proxy, settings = link
    jobs, done = await map_reduce_going(settings, "map-reduce.policy=wait-for-all")
    try:
        monkeypatch.setattr(base, "connect_first", cancelled_once)
        proxy.cut()
        await wait_for(lambda: cancelled == 1, timeout=10, what="the submitter's reconnect cancelled")
        resumed_from = done()
        await wait_for(
            lambda: done() >= resumed_from + 5, timeout=30, what="jobs to go on", explain=lambda: clients_of(jobs)
        )
        assert {c.name: c.state for c in jobs.snapshot().clients}["submitter-1"] == "running"
    finally:
        await jobs.stop()
    final = jobs.last
    assert final is not None and final.ledger.lost == 0, final.ledger
    assert ("restart", "submitter-1") in [(e.kind, e.client) for e in final.events]


@pytest.mark.timeout(120)
async def test_a_recovery_that_breaks_says_so_instead_of_reconnecting_for_good(link: Link, monkeypatch: Any) -> None:
    """Whatever ends a recovery without a reconnect, the client is shown failed, with the reason, and the event log
    says it: never "reconnecting" with nothing going on behind it."""
    connect = base.connect_first

    async def broken(settings: Settings, name: str = "") -> Any:
        if name.endswith("submitter-1"):
            raise ValueError("a fault no attempt expects")
        return await connect(settings, name)

    proxy, settings = link
    jobs, _ = await map_reduce_going(settings)
    try:
        monkeypatch.setattr(base, "connect_first", broken)
        proxy.cut()
        submitter = lambda: next(c for c in jobs.snapshot().clients if c.name == "submitter-1")  # noqa: E731
        await wait_for(lambda: submitter().state == "failed", timeout=30, what="the submitter shown failed")
        assert submitter().detail == "reconnecting ended: ValueError: a fault no attempt expects"
    finally:
        await jobs.stop()
    final = jobs.last
    assert final is not None
    assert ("error", "submitter-1") in [(e.kind, e.client) for e in final.events]
