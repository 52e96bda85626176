"""The ledger's arithmetic: every copy settles one way, and what never settles is lost."""

from __future__ import annotations

from amqp_lab.engine.ledger import Ledger
from amqp_lab.scenario.topology import Binding, Exchange, Queue, Topology

TOPOLOGY = Topology(
    exchanges=(Exchange("fan", "fanout"), Exchange("dlx", "fanout")),
    queues=(Queue("a", arguments={"x-dead-letter-exchange": "dlx"}), Queue("b"), Queue("dead")),
    bindings=(Binding("fan", "a"), Binding("fan", "b"), Binding("dlx", "dead")),
)


def test_a_fanout_expects_one_copy_per_queue_and_acks_settle_them() -> None:
    ledger = Ledger(TOPOLOGY)
    assert ledger.published(1, "fan", "", {}, mandatory=False) == {"a", "b"}
    ledger.delivered(1, "a", redelivered=False)
    ledger.acked(1, "a")
    counts = ledger.counts()
    assert (counts.copies, counts.acked, counts.outstanding) == (2, 1, 1)
    ledger.acked(1, "a")
    assert ledger.counts().duplicates == 1


def test_reject_follows_the_dead_letter_exchange() -> None:
    ledger = Ledger(TOPOLOGY)
    ledger.published(1, "fan", "", {}, mandatory=False)
    ledger.rejected(1, "a", "", {})
    ledger.rejected(1, "b", "", {})  # no dead-letter exchange: dropped on purpose
    counts = ledger.counts()
    assert (counts.dead_lettered, counts.rejected) == (1, 1)
    assert ledger.outstanding_in("dead") == 1
    ledger.acked(1, "dead")
    assert ledger.counts().outstanding == 0


def test_broker_dead_lettering_is_recognised_by_x_death() -> None:
    ledger = Ledger(TOPOLOGY)
    ledger.published(7, "fan", "", {}, mandatory=False)
    ledger.delivered(7, "dead", redelivered=False, death={"queue": "a", "reason": "expired"})
    ledger.acked(7, "dead")
    ledger.acked(7, "b")
    counts = ledger.counts()
    assert (counts.expired, counts.dead_lettered, counts.outstanding) == (1, 1, 0)


def test_returns_and_nacks_withdraw_expectations() -> None:
    ledger = Ledger(TOPOLOGY)
    assert ledger.published(1, "nowhere", "", {}, mandatory=True) == frozenset()
    ledger.returned(1, "nowhere", "", {})
    ledger.published(2, "fan", "", {}, mandatory=False)
    ledger.nacked(2, "fan", "", {})
    counts = ledger.counts()
    assert (counts.returned, counts.nacked, counts.copies, counts.outstanding) == (1, 1, 0, 0)


def test_what_is_neither_settled_nor_found_at_the_end_is_lost() -> None:
    ledger = Ledger(TOPOLOGY)
    for msg_id in (1, 2, 3):
        ledger.published(msg_id, "", "b", {}, mandatory=False)
    ledger.acked(1, "b")
    ledger.drained(2, "b")
    assert ledger.counts().lost == 0  # not over yet: 3 may still be in flight
    ledger.finish()
    counts = ledger.counts()
    assert (counts.acked, counts.still_queued, counts.lost) == (1, 1, 1)


def test_an_exclusive_queue_that_goes_away_discards_its_copies() -> None:
    ledger = Ledger(TOPOLOGY.with_queue(Queue("reply", durable=False, exclusive=True)))
    ledger.published(1, "", "reply", {}, mandatory=True)
    ledger.queue_gone("reply")
    ledger.finish()
    assert (ledger.counts().discarded, ledger.counts().lost) == (1, 0)
