"""A depth trend's label has 18 columns: queues are told apart by what differs in their names."""

from __future__ import annotations

from amqp_lab.ui.widgets.trends import distinct_parts


def test_queues_sharing_a_first_word_are_labelled_by_the_rest() -> None:
    assert distinct_parts(["subscriber.orders", "subscriber.payments"]) == ["orders", "payments"]
    assert distinct_parts(["jobs.shard-1", "jobs.shard-2", "results"]) == ["jobs.shard-1", "jobs.shard-2", "results"]
    assert distinct_parts(["a.b.c", "a.b.d", "a.x"]) == ["b.c", "b.d", "x"]


def test_a_lone_queue_and_a_name_that_is_all_prefix_stay_whole() -> None:
    assert distinct_parts(["subscriber.orders"]) == ["subscriber.orders"]
    assert distinct_parts(["tasks", "tasks.retry"]) == ["tasks", "tasks.retry"]
