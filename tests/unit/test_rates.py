"""Steady per-queue rates from counters that the broker updates in steps."""

from __future__ import annotations

from amqp_lab.broker.models import MessageRates, MessageTotals
from amqp_lab.broker.rates import SteadyRates


def publish_rate(tracker: SteadyRates, published: int, at: float, reported: float = 0.0) -> float:
    return tracker.steady("orders", MessageTotals(publish=published), MessageRates(publish=reported), at).publish


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
