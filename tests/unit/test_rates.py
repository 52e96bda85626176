"""Steady per-queue rates from counters that the broker updates in steps."""

from __future__ import annotations

import pytest
from amqp_lab.broker.models import MessageRates, MessageTotals
from amqp_lab.broker.rates import SteadyRates


def publish_rate(
    tracker: SteadyRates, published: int, at: float, reported: float = 0.0, scheduled: bool = True
) -> float:
    totals, rates = MessageTotals(publish=published), MessageRates(publish=reported)
    return tracker.steady("orders", totals, rates, at, scheduled).publish


def test_rate_holds_between_steps_instead_of_dropping_to_zero() -> None:
    tracker = SteadyRates()
    # The broker updates every 5 s; 50 messages a second; polled every second.
    assert publish_rate(tracker, 1000, at=0.0, reported=50.0) == 50.0  # nothing derived yet: the broker's
    # The first step only anchors the timing; the broker's last report holds meanwhile.
    assert publish_rate(tracker, 1000, at=1.0) == 50.0
    assert publish_rate(tracker, 1250, at=3.0) == 50.0
    seen = [publish_rate(tracker, 1500, at=8.0)] + [publish_rate(tracker, 1500, at=t) for t in (9.0, 10.0, 12.0)]
    assert seen == [50.0, 50.0, 50.0, 50.0]


def test_an_idle_queue_falls_to_zero_after_a_few_missed_steps() -> None:
    tracker = SteadyRates()
    for published, at in ((0, 0.0), (100, 2.0), (200, 7.0)):
        publish_rate(tracker, published, at)
    assert publish_rate(tracker, 200, at=15.0) == 20.0
    assert publish_rate(tracker, 200, at=20.0) == 0.0


def test_queues_that_disappear_are_forgotten() -> None:
    tracker = SteadyRates()
    for published, at in ((0, 0.0), (100, 2.0), (200, 7.0)):
        publish_rate(tracker, published, at)
    tracker.keep_only([])
    assert publish_rate(tracker, 300, at=8.0, reported=7.0) == 7.0


def test_a_poll_between_the_scheduled_ones_does_not_time_a_step() -> None:
    """Steps every 5 s (t = 0, 5, 10, ...), 50 messages each: 10/s. Polled every 5 s, at 4.9, 9.9, 14.9, ...; an
    extra poll at 20.1 (the user changed the filter) sees the step of t = 20 first. Timed from it, the period
    read 0.2 s and the rate 250/s; it reads the rate as it stands, and the step is timed at 24.9 as usual."""
    tracker = SteadyRates()
    published = lambda t: 50 * (int(t // 5) + 1)  # noqa: E731
    for at in (4.9, 9.9, 14.9, 19.9):
        publish_rate(tracker, published(at), at)
    assert publish_rate(tracker, published(20.1), at=20.1, scheduled=False) == pytest.approx(10.0)
    assert [publish_rate(tracker, published(at), at) for at in (24.9, 29.9)] == pytest.approx([10.0, 10.0])
