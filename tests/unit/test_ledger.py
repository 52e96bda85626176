"""The ledger's arithmetic: every copy settles one way, and what never settles is lost."""

from __future__ import annotations

import random

import pytest
from amqp_lab.amqp.model import DIRECT_REPLY_TO, Binding, Exchange, Queue, Topology
from amqp_lab.config import build
from amqp_lab.engine.context import RunContext
from amqp_lab.engine.ledger import MEANINGS, Ledger, LedgerCounts
from amqp_lab.engine.relay import ID_SPAN, LedgerRelay, replay
from hypothesis import example, given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize("returned_first", [True, False], ids=["returned, then delivered", "delivered, then returned"])
def test_a_direct_reply_to_answer_both_delivered_and_returned_counts_once(returned_first: bool) -> None:
    """RabbitMQ 3.10 and 4.0 deliver a mandatory answer to direct reply-to and return it too, in either order:
    200 answers read "returned 200, duplicates 196"."""
    ledger = Ledger(TOPOLOGY)
    to = f"{DIRECT_REPLY_TO}.g1h2AA"
    ledger.published(1, "", to, {}, mandatory=True)
    steps = [lambda: ledger.returned(1, "", to, {}), lambda: ledger.acked(1, DIRECT_REPLY_TO)]
    for step in steps if returned_first else steps[::-1]:
        step()
    ledger.finish()
    counts = ledger.counts()
    assert (counts.acked, counts.copies, counts.delivered_and_returned) == (1, 1, 1)
    assert (counts.returned, counts.duplicates, counts.lost, counts.outstanding) == (0, 0, 0, 0)


def test_a_direct_reply_to_answer_only_returned_is_returned() -> None:
    """Its requester gone, the answer is returned and never delivered: a return, as any other."""
    ledger = Ledger(TOPOLOGY)
    ledger.published(1, "", f"{DIRECT_REPLY_TO}.gone", {}, mandatory=True)
    ledger.returned(1, "", f"{DIRECT_REPLY_TO}.gone", {})
    ledger.finish()
    counts = ledger.counts()
    assert (counts.returned, counts.copies, counts.delivered_and_returned, counts.lost) == (1, 0, 0, 0)


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


def test_sent_again_into_a_durable_queue_it_already_reached_counts_the_second_copy_as_a_duplicate() -> None:
    ledger = Ledger(TOPOLOGY)
    before = ledger.published(1, "fan", "", {}, mandatory=False)
    assert ledger.resent(1, "fan", "", {}, False, before) == before  # the confirm was lost with the connection
    assert ledger.counts().copies == 2  # still one copy expected per queue
    for _ in range(2):  # the first attempt had made it after all: both arrive
        for queue in ("a", "b"):
            ledger.delivered(1, queue, redelivered=False)
            ledger.acked(1, queue)
    ledger.finish()
    counts = ledger.counts()
    assert (counts.acked, counts.duplicates, counts.lost) == (2, 2, 0)


def test_sent_again_after_an_exclusive_queue_went_and_came_back_is_expected_there_again() -> None:
    subscriber = Queue("sub", durable=False, exclusive=True)
    ledger = Ledger(TOPOLOGY)
    ledger.set_topology(ledger.topology.with_queue(subscriber, (Binding("fan", "sub"),)))
    before = ledger.published(1, "fan", "", {}, mandatory=False)
    ledger.queue_gone("sub")  # its connection went: what it held is discarded
    ledger.set_topology(ledger.topology.without_queue("sub"))
    ledger.set_topology(ledger.topology.with_queue(subscriber, (Binding("fan", "sub"),)))  # declared again
    ledger.resent(1, "fan", "", {}, False, before)
    for queue in ("a", "b", "sub"):
        ledger.delivered(1, queue, redelivered=False)
        ledger.acked(1, queue)
    ledger.finish()
    counts = ledger.counts()
    assert (counts.acked, counts.duplicates, counts.lost) == (3, 0, 0)


def test_sent_again_where_nothing_routes_it_any_more_is_unroutable() -> None:
    ledger = Ledger(TOPOLOGY.with_queue(Queue("only", durable=True), ()))
    before = ledger.published(1, "", "only", {}, mandatory=False)
    ledger.set_topology(ledger.topology.without_queue("only"))
    assert ledger.resent(1, "", "only", {}, False, before) == frozenset()
    ledger.finish()
    counts = ledger.counts()
    assert (counts.copies, counts.unroutable, counts.lost) == (0, 1, 0)


def test_a_stream_keeps_its_copies_owed_to_no_one_and_counts_what_is_read() -> None:
    topology = Topology(
        exchanges=(Exchange("fan", "fanout"),),
        queues=(Queue("log", arguments={"x-queue-type": "stream"}), Queue("b")),
        bindings=(Binding("fan", "log"), Binding("fan", "b")),
    )
    ledger = Ledger(topology)
    for msg_id in (1, 2):
        ledger.published(msg_id, "fan", "", {}, mandatory=False)
        ledger.acked(msg_id, "b")
    ledger.delivered(1, "log", redelivered=False)
    ledger.acked(1, "log")
    ledger.acked(1, "log")  # a replay reads the same event again: not a duplicate
    ledger.finish()
    counts = ledger.counts()
    assert (counts.copies, counts.kept, counts.read, counts.duplicates, counts.lost) == (2, 2, 2, 0, 0)


def test_gathered_from_agents_an_ack_may_arrive_before_its_publish() -> None:
    ledger = Ledger(TOPOLOGY, gathered=True)
    ledger.acked(5, "b")  # the consuming agent's batch came in first
    ledger.published(5, "fan", "", {}, mandatory=False)  # copies for a and b: b's is settled on arrival
    counts = ledger.counts()
    assert (counts.acked, counts.outstanding, counts.duplicates) == (1, 1, 0)
    ledger.acked(9, "b")  # a message nobody published: a duplicate, once the run is over
    ledger.finish()
    assert ledger.counts().duplicates == 1


def test_an_agents_recorded_calls_replay_to_the_same_counts() -> None:
    relay = LedgerRelay(TOPOLOGY, id_base=ID_SPAN)
    direct = Ledger(TOPOLOGY)
    for ledger in (relay, direct):
        msg_id = ledger.next_id()
        assert ledger.published(msg_id, "fan", "", {}, mandatory=False) == {"a", "b"}
        ledger.delivered(msg_id, "a", redelivered=False)
        ledger.acked(msg_id, "a")
        ledger.rejected(msg_id, "b", "", {})
        ledger.confirmed()
    ctx = RunContext(build({}), Ledger(TOPOLOGY, gathered=True), random.Random(1))
    replay(ctx, relay.take())
    assert ctx.ledger.counts() == direct.counts()
    with pytest.raises(ValueError, match="unknown ledger operation 'finish'"):
        replay(ctx, [["finish"]])  # the control exchange is not trusted


def test_every_figure_has_a_meaning_to_show() -> None:
    assert set(MEANINGS) == set(LedgerCounts().as_dict())


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            ["publish", "publish-direct-reply", "deliver", "ack", "reject", "nack", "return", "gone", "drain", "death"]
        ),
        st.integers(1, 6),
        st.sampled_from(["a", "b", "dead", DIRECT_REPLY_TO]),
    ),
    max_size=60,
)


@given(events=EVENTS, gathered=st.booleans(), finished_checked=st.booleans())
# Found by it: met dead-lettered before it was published, then rejected into the same dead-letter queue.
@example(
    events=[("publish", 1, "a")] * 3 + [("death", 4, "a"), ("publish", 1, "a"), ("reject", 4, "a")],
    gathered=False,
    finished_checked=False,
)
@settings(max_examples=1500, deadline=None)
def test_the_identity_holds_whatever_happens_in_whatever_order(
    events: list[tuple[str, int, str]], gathered: bool, finished_checked: bool
) -> None:
    """copies = acked + rejected + dead-lettered + discarded + still queued + outstanding, after every event: the
    balance the run screen's ledger panel shows. Events come in any order, twice, or for copies never expected;
    each message is published once."""
    ledger = Ledger(TOPOLOGY, gathered=gathered)
    for kind, msg_id, queue in events:
        if kind == "publish":  # ids are the ledger's own, each published once
            ledger.published(ledger.next_id(), "fan", "", {}, mandatory=False)
        elif kind == "publish-direct-reply":
            ledger.published(ledger.next_id(), "", f"{DIRECT_REPLY_TO}.x", {}, mandatory=True)
        elif kind == "deliver":
            ledger.delivered(msg_id, queue, redelivered=False)
        elif kind == "ack":
            ledger.acked(msg_id, queue)
        elif kind == "reject":
            ledger.rejected(msg_id, queue, "", {})
        elif kind == "nack":
            ledger.nacked(msg_id, "fan", "", {})
        elif kind == "return":
            ledger.returned(msg_id, "", f"{DIRECT_REPLY_TO}.x", {})
        elif kind == "gone":
            ledger.queue_gone(queue)
        elif kind == "drain":
            ledger.drained(msg_id, queue)
        else:
            ledger.delivered(msg_id, "dead", redelivered=False, death={"queue": "a", "reason": "expired"})
        counts = ledger.counts()
        assert counts.copies == counts.accounted, (kind, counts)
    ledger.finish(checked=finished_checked)
    counts = ledger.counts()
    assert counts.copies == counts.accounted
    assert counts.outstanding == counts.lost + counts.unchecked
