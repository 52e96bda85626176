"""Queue types as a user sees them: quorum queues by default where nothing may be lost, and a stream a late
subscriber replays from where it chooses."""

from __future__ import annotations

import pytest
from amqp_lab.config import Settings

from tests.engine.conftest import run_scenario


@pytest.mark.embedded
async def test_reliable_workers_run_on_a_quorum_queue_and_fast_ones_on_a_classic_one(settings: Settings) -> None:
    for overrides, expected in (
        (("workers.publish_mode='confirms'",), "quorum"),
        (("workers.persistent=false",), "classic"),
    ):
        _, final = await run_scenario(settings, "workers", "duration=2.5s", "workers.rate=40", *overrides)
        (tasks,) = final.queues
        assert tasks.place is not None and tasks.place.type == expected  # as the management API lists it
        assert any(note.startswith(f"{expected} queues:") for note in final.notes)
        assert final.ledger.lost == 0


async def test_a_late_subscriber_replays_its_stream_from_the_offset_it_chose(settings: Settings) -> None:
    common = (
        "duration=4s", "pub-sub.rate=25", "pub-sub.queue_type='stream'", "pub-sub.late_subscriber='orders'",
        "pub-sub.joins_after='2s'",
    )  # fmt: skip
    got = {}
    for offset in ("first", "next"):
        _, final = await run_scenario(settings, "pub-sub", *common, f"pub-sub.offset='{offset}'")
        orders = next(s for s in final.subscribers if s.name == "orders")
        everything = next(s for s in final.subscribers if s.name == "everything")
        assert everything.received == everything.expected > 0  # on time, reading from next
        assert final.ledger.lost == 0 and final.ledger.kept >= final.ledger.read > 0
        assert any(e.client == "orders" and f"reading from {offset}" in e.text for e in final.events)
        got[offset] = (orders.received, orders.expected)
    received, expected = got["first"]
    assert received == expected  # everything since the start, the two seconds before it joined included
    received, expected = got["next"]
    assert 0 < received < expected  # only what came after it joined
