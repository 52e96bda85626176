"""Rate max without confirms: nothing paces the publisher but its socket, so the lab holds it while every queue it
reaches has AHEAD copies waiting; the broker's own count of the queue stays within that, the clients table says
the publisher is holding, and a queue nobody keeps up with does not hold it back while another queue is read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from amqp_lab.config import Settings
from amqp_lab.engine.clients.producers import AHEAD, PUBLISH_WINDOW
from amqp_lab.engine.run import Run
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import from_text

from tests.conftest import deadline
from tests.engine.conftest import nothing_left

HOLDING = f"holding: {AHEAD:,} or more queued ahead"

# One worker at 10 tasks a second: any publisher outruns it, on however busy a machine.
SLOW_READER = """
preset = "workers"
duration = 60
workers.rate = "max"
workers.publish_mode = "none"
workers.persistent = false
workers.queue_type = "classic"
workers.workers = 1
workers.processing = "100ms"
"""

# eu-audit slows to a standstill, its queue filling; one key in 27 also reaches `one-key`, a ninth of eu-audit's
# share, so its reader cannot fall AHEAD behind before eu-audit passes the bound, on however busy a machine.
ONE_STALLED = """
preset = "pub-sub"
duration = 60
pub-sub.publishers = 1
pub-sub.rate = "max"
pub-sub.publish_mode = "none"
pub-sub.queue_type = "classic"
pub-sub.subscribers = { eu-audit = ["eu.#"], one-key = ["ap.billing.paid"] }
[[schedule]]
at = 0.5
client = "eu-audit"
action = "slow"
value = 1000
"""


@pytest.fixture(autouse=True)
def one_broker_is_enough(rabbit: Any) -> None:
    if rabbit.version != "3.10":
        pytest.skip("the publisher's pace is the client's: one broker version is enough")


async def run_until(settings: Settings, text: str, enough: Callable[[list[RunSnapshot]], bool]) -> list[RunSnapshot]:
    """Run the scenario until `enough` holds of the snapshots so far (or its minute is up); clean up."""
    seen: list[RunSnapshot] = []
    stop = asyncio.Event()

    def take(snapshot: RunSnapshot) -> None:
        seen.append(snapshot)
        if enough(seen):
            stop.set()

    run = Run(from_text(text, "full speed"), settings)
    run.add_listener(take)
    final = await asyncio.wait_for(run.execute(stop=stop), deadline(180))
    assert stop.is_set(), "the condition never held"
    assert final.ledger.lost == 0 and final.ledger.copies == final.ledger.accounted
    assert run.leftovers == [] and await nothing_left(settings, run.run_id) == []
    return seen


def ready(snapshot: RunSnapshot, queue_suffix: str) -> int:
    """The broker's count of ready messages in the queue, as the run last sampled it (a passive declare)."""
    return next((q.ready for q in snapshot.queues if q.name.endswith(queue_suffix)), 0)


async def test_full_speed_without_confirms_keeps_the_queue_within_reach_of_its_reader(settings: Settings) -> None:
    def held_and_sampled(seen: list[RunSnapshot]) -> bool:
        # Holding, and the broker's count sampled since at least twice (about once a second).
        since = [s for s in seen if any(c.detail == HOLDING for c in s.clients)]
        return len({s.depths_sampled_at for s in since}) >= 3

    seen = await run_until(settings, SLOW_READER, held_and_sampled)
    most = max(ready(s, ".tasks") for s in seen)
    assert AHEAD // 2 <= most <= AHEAD + PUBLISH_WINDOW, most  # the broker's own count, held near the bound
    assert max(s.ledger.published - s.ledger.acked for s in seen) <= AHEAD + PUBLISH_WINDOW


async def test_a_queue_nobody_keeps_up_with_does_not_hold_the_publisher(settings: Settings) -> None:
    def stalled_queue_past_the_bound(seen: list[RunSnapshot]) -> bool:
        return ready(seen[-1], ".eu-audit") > AHEAD + PUBLISH_WINDOW

    seen = await run_until(settings, ONE_STALLED, stalled_queue_past_the_bound)
    assert not [c.detail for s in seen for c in s.clients if c.detail == HOLDING]
