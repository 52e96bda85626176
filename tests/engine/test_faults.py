"""Every fault with the effect a user sees, and the ledger balancing or reporting the loss."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.report import expectations
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load

from tests.conftest import wait_for
from tests.engine.conftest import client, nothing_left, run_scenario

pytestmark = pytest.mark.embedded


def schedule(*entries: str) -> str:
    return "schedule=[" + ", ".join(entries) + "]"


async def test_crash_redelivers_what_the_worker_held(settings: Settings) -> None:
    # Slow work keeps each worker's prefetch full. The crash comes once the worker holds all its prefetch allows:
    # a crash at a fixed second found it holding none yet on a busy machine, and one while its prefetch filled
    # sent back copies on their way to it, which come back redelivered but which it never saw, so never held.
    run = Run(load("workers", ["duration=60s", "workers.processing=200ms", "workers.rate=60"]), settings)
    await run.start()
    try:
        full = next(spec.prefetch for spec in run.plan.clients if spec.name == "worker-1")  # type: ignore[union-attr]
        await wait_for(lambda: client(run.snapshot(), "worker-1").unacked >= full, what="worker-1's prefetch full")
        await run.inject("worker-1", "crash")
        await wait_for(lambda: client(run.snapshot(), "worker-1").state == "crashed", what="worker-1 crashed")
    finally:
        await run.stop()
    s = run.last
    assert s is not None
    assert client(s, "worker-1").state == "stopped"  # crashed, then closed by cleanup
    assert client(s, "worker-1").unacked == 0  # the broker took back what it held
    assert s.ledger.redelivered > 0  # its unacked tasks went to the other workers
    assert s.ledger.requeued >= s.ledger.redelivered
    assert any(e.kind == "crash" and "back to the queue" in e.text for e in s.events)
    assert s.ledger.lost == 0


async def test_a_fault_asked_for_while_the_run_drains_is_refused_and_logged(settings: Settings) -> None:
    """A restart pressed near the end answered "Restart: worker-2." and did nothing."""
    run = Run(
        load("workers", ["duration=1s", "workers.workers=1", "workers.processing=300ms", "workers.rate=20"]), settings
    )
    asked: list[asyncio.Task[None]] = []

    def watch(snap: RunSnapshot) -> None:
        if snap.state == "draining" and not asked:
            asked.append(asyncio.ensure_future(run.inject("worker-1", "restart")))

    run.add_listener(watch)
    final = await run.execute()
    await asyncio.gather(*asked)
    assert asked, "the run never drained"
    refused = [e for e in final.events if e.kind == "refused" and e.client == "worker-1"]
    assert refused and refused[0].text == "restart: the run is draining, its clients are being stopped"
    assert not any(e.kind == "restart" for e in final.events)


async def test_crash_with_auto_ack_loses_tasks(settings: Settings) -> None:
    # On a classic queue, auto ack means gone once sent; a quorum queue was seen to redeliver one in flight.
    _, s = await run_scenario(
        settings, "workers", "duration=2s", "workers.ack=auto", "workers.processing=50ms", "workers.rate=100",
        "workers.queue_type='classic'",
        schedule('{at="1s", action="crash", client="worker-1"}'),
        "expect.lost=1000",
    )  # fmt: skip
    assert s.ledger.lost > 0  # prefetched, auto-acked, gone with the worker
    assert s.ledger.redelivered == 0


async def test_hang_makes_requesters_time_out_and_replies_come_late(settings: Settings) -> None:
    """The handler hangs for 1 s while requests time out after 300 ms: requests time out, the held ones are
    answered after the heal, too late, and new ones on time again. The run goes until that last reply (a 3 s run
    on a loaded machine ended before any reply came on time)."""
    run = Run(
        load("rpc", ["duration=60s", "rpc.handlers=1", "rpc.requesters=1", "rpc.unroutable=0", "rpc.timeout=300ms",
                     "rpc.processing=1ms", schedule('{at="0.5s", action="hang", client="handler-1", for="1s"}')]),
        settings,
    )  # fmt: skip
    on_time_when_late: list[int] = []  # replies on time when the first late one came

    def on_time_again() -> bool:
        counters = run.snapshot().counters
        if counters.get("late_replies", 0) and not on_time_when_late:
            on_time_when_late.append(counters.get("replies", 0))
        return bool(on_time_when_late) and counters.get("replies", 0) > on_time_when_late[0]

    await run.start()
    try:
        await wait_for(on_time_again, 30, "a reply on time after the late ones", lambda: str(run.snapshot().counters))
    finally:
        await run.stop()
    s = run.last
    assert s is not None
    assert s.counters["timeouts"] > 0 and s.counters["late_replies"] > 0
    assert any(e.kind == "timeout" for e in s.events)
    assert s.ledger.lost == 0
    assert await nothing_left(settings, run.run_id) == []


async def test_slow_worker_finishes_fewer_tasks(settings: Settings) -> None:
    _, s = await run_scenario(
        settings, "workers", "duration=2s", "workers.workers=2", "workers.processing=10ms", "workers.prefetch=1",
        "workers.rate=120", schedule('{at="0s", action="slow", client="worker-1", value=10}'),
    )  # fmt: skip
    assert client(s, "worker-1").received * 3 < client(s, "worker-2").received


async def test_reject_without_requeue_drops_on_purpose(settings: Settings) -> None:
    _, s = await run_scenario(
        settings, "workers", "duration=1.5s", "workers.workers=1", "workers.processing=1ms",
        schedule('{at="0.5s", action="reject", client="worker-1"}'),
    )  # fmt: skip
    assert s.ledger.rejected > 0
    assert s.ledger.lost == 0  # a decision, not a loss


async def test_nack_with_requeue_redelivers(settings: Settings) -> None:
    _, s = await run_scenario(
        settings, "workers", "duration=1.5s", "workers.processing=5ms",
        schedule('{at="0.3s", action="nack", client="worker-1", for="0.5s"}'),
    )  # fmt: skip
    assert s.ledger.requeued > 0 and s.ledger.redelivered > 0
    assert s.ledger.acked == s.ledger.published
    assert s.ledger.lost == 0


DEAD_LETTERS = """
pattern = "custom"
duration = "1.5s"
[[custom.exchanges]]
name = "work"
[[custom.exchanges]]
name = "dead"
type = "fanout"
[[custom.queues]]
name = "tasks"
arguments = { "x-dead-letter-exchange" = "dead" }
[[custom.queues]]
name = "dead-letters"
[[custom.bindings]]
source = "work"
destination = "tasks"
routing_key = "task"
[[custom.bindings]]
source = "dead"
destination = "dead-letters"
[[custom.publishers]]
name = "producer"
exchange = "work"
routing_keys = ["task"]
rate = 50
[[custom.consumers]]
name = "picky"
queue = "tasks"
[[custom.consumers]]
name = "undertaker"
queue = "dead-letters"
[[schedule]]
at = "0s"
action = "reject"
client = "picky"
"""


async def test_rejected_messages_are_dead_lettered_and_followed(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dead.toml"
    path.write_text(DEAD_LETTERS)
    _, s = await run_scenario(settings, str(path))
    assert s.ledger.dead_lettered == s.ledger.published > 0
    assert client(s, "undertaker").received == s.ledger.published
    assert s.ledger.lost == 0


async def test_stopped_durable_subscriber_gets_its_events_later(settings: Settings) -> None:
    held: list[int] = []

    def watch(snapshot: RunSnapshot) -> None:
        queue = next((q for q in snapshot.queues if q.name.endswith("subscriber.everything")), None)
        if queue is not None and client(snapshot, "everything").state == "stopped":
            held.append(queue.ready)

    _, s = await run_scenario(
        settings, "pub-sub", "duration=3s", "pub-sub.rate=30",
        schedule('{at="0.5s", action="stop", client="everything", for="1.5s"}'),
        listener=watch,
    )  # fmt: skip
    assert max(held) > 0  # while it was away, its durable queue kept its events
    everything = next(sub for sub in s.subscribers if sub.name == "everything")
    assert everything.received == everything.expected == s.ledger.published
    assert s.ledger.lost == 0


async def test_stopped_transient_subscriber_misses_events(settings: Settings) -> None:
    _, s = await run_scenario(
        settings, "pub-sub", "duration=2.5s", "pub-sub.rate=30", "pub-sub.reliable=false",
        schedule('{at="0.5s", action="stop", client="everything", for="1s"}'),
    )  # fmt: skip
    everything = next(sub for sub in s.subscribers if sub.name == "everything")
    assert everything.missed > 0  # its exclusive queue went with it
    assert everything.received + everything.missed <= everything.expected
    assert s.counters["missed"] >= everything.missed


async def test_missing_shard_with_deadline_gives_partial_and_late_results(settings: Settings) -> None:
    run, s = await run_scenario(
        settings, "map-reduce", "duration=3s", "map-reduce.rate=10", "map-reduce.deadline=300ms",
        "expect.jobs_partial=0", "expect.late_results=0",
        schedule('{at="0.5s", action="stop", client="shard-2", for="1s"}'),
    )  # fmt: skip
    c = s.counters
    assert c["jobs_partial"] > 0
    # What a CI user writes in [expect] holds the run to it: both fail here (the key was partial_jobs, which the
    # engine never counted, so it could never fail).
    failed = {e.counter for e in expectations(run.scenario, s) if not e.met}
    assert {"jobs_partial", "late_results"} <= failed
    assert c["late_results"] > 0  # shard-2 came back and answered the jobs its queue kept
    assert any(e.kind == "partial" for e in s.events)
    assert s.ledger.lost == 0


async def test_missing_shard_with_wait_for_all_keeps_jobs_pending_then_completes(settings: Settings) -> None:
    pending: list[int] = []
    held: list[tuple[int, int]] = []  # (the results queue's unacked, the reducer's) in one snapshot

    def watch(snap: RunSnapshot) -> None:
        pending.append(snap.counters.get("pending_jobs", 0))
        results = next((q for q in snap.queues if q.name.endswith(".results")), None)
        if results is not None:
            held.append((results.unacked, client(snap, "reducer").unacked))

    _, s = await run_scenario(
        settings, "map-reduce", "duration=3s", "map-reduce.rate=10", "map-reduce.policy=wait-for-all",
        schedule('{at="0.5s", action="stop", client="shard-2", for="1.5s"}'),
        listener=watch,
    )  # fmt: skip
    c = s.counters
    assert max(pending) >= 10  # jobs waited for the missing shard
    # The reducer holds the partial results of those jobs unacked, and the results queue shows them (it read 0).
    assert max(queue for queue, _ in held) >= 10
    assert all(queue == reducer for queue, reducer in held)
    assert c.get("jobs_partial", 0) == 0
    assert c["jobs_complete"] == c["jobs_submitted"]  # and completed once it was back: nothing lost
    assert s.ledger.lost == 0


async def test_immediate_is_refused_and_the_requester_recovers(settings: Settings) -> None:
    _, s = await run_scenario(
        settings, "rpc", "duration=2s", "rpc.requesters=1", "rpc.immediate=true", "rpc.unroutable=0"
    )
    c = s.counters
    assert c["immediate_refused"] == 1
    assert s.ledger.refused == 1
    assert any(e.kind == "refused" and "540" in e.text for e in s.events)
    assert c["replies"] > 0  # reconnected, and went on without the flag
    assert s.ledger.lost == 0


async def test_ttl0_dead_letter_replaces_immediate(settings: Settings) -> None:
    """No handler: with TTL 0 each request expires at once and is dead-lettered, as immediate would refuse it."""
    _, s = await run_scenario(
        settings, "rpc", "duration=1.5s", "rpc.handlers=0", "rpc.ttl0_dead_letter=true", "rpc.unroutable=0",
        "rpc.timeout=200ms", "expect.timeouts=1000",
    )  # fmt: skip
    assert s.ledger.expired > 0
    assert client(s, "dead-letters").received == s.ledger.expired
    assert s.ledger.lost == 0


DROP_HEAD = """
pattern = "custom"
duration = "5s"
[[custom.exchanges]]
name = "in"
[[custom.queues]]
name = "short"
arguments = { "x-max-length" = 5, "x-overflow" = "drop-head" }
[[custom.bindings]]
source = "in"
destination = "short"
routing_key = "k"
[[custom.publishers]]
name = "burst"
exchange = "in"
routing_keys = ["k"]
rate = "max"
limit = 50
"""


async def test_ttl0_dead_letter_with_a_hung_handler_follows_what_it_held(settings: Settings) -> None:
    """The hung handler's prefetched requests go back to the TTL 0 queue when the run stops, and from there to the
    dead-letter queue: the ledger read them as "lost 10" and the run failed. The hang comes once a reply has (a hang
    at a fixed second came before any on a busy machine), and the run stops once requests expire in its place."""
    run = Run(
        load("rpc", ["duration=60s", "rpc.requesters=1", "rpc.handlers=1", "rpc.rate=10", "rpc.unroutable=0",
                     "rpc.ttl0_dead_letter=true", "expect.timeouts=1000"]),
        settings,
    )  # fmt: skip
    await run.start()
    try:
        await wait_for(lambda: run.snapshot().counters.get("replies", 0) > 0, what="a reply while the handler keeps up")
        await run.inject("handler-1", "hang")
        await wait_for(lambda: run.snapshot().ledger.expired > 0, what="requests expired while it hangs")
    finally:
        await run.stop()
    s = run.last
    assert s is not None
    assert s.ledger.dead_lettered == s.ledger.expired > 0  # expired as they came, dead-lettered
    assert 0 < s.ledger.still_queued <= 10  # what it held (prefetch 10), found dead-lettered at the end
    assert s.ledger.lost == 0


async def test_drop_head_overflow_is_reported_as_loss(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "drop.toml"
    path.write_text(DROP_HEAD)
    _, s = await run_scenario(settings, str(path), "expect.lost=1000")
    assert s.ledger.published == 50
    assert s.ledger.still_queued == 5  # what the queue kept
    assert s.ledger.lost == 45  # the head it dropped: should exist somewhere and does not


async def test_reject_publish_overflow_nacks_instead_of_losing(settings: Settings) -> None:
    _, s = await run_scenario(
        settings, "workers", "duration=1.5s", "workers.max_length=5", "workers.overflow=reject-publish",
        "workers.workers=1", "workers.processing=50ms", "workers.rate=100", "expect.nacked=10000",
    )  # fmt: skip
    assert s.ledger.nacked > 0
    assert s.counters["nacked"] == s.ledger.nacked
    assert s.ledger.lost == 0
