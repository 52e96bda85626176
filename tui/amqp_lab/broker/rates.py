"""Message rates that hold steady between the broker's statistics updates.

RabbitMQ refreshes its message counters in steps: the management plugin keeps
them in samples of 5 s by default (management.sample_retention_policies),
whatever collect_statistics_interval says. The rate it reports is taken over
the last second: right after a step it is correct, a moment later it reads 0.
Polled at any other moment, busy queues would flicker between a rate and 0.
This tracker derives each rate from the counters' last two steps instead.

A step is timed by the poll that first saw it, so only polls on the regular
schedule may time one: a poll asked for in between (the user changed the
filter) sees a step early, and the period measured up to it is short (a rate
read three times too high). Such a poll reads the rates as they stand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from amqp_lab.broker.models import MessageRates, MessageTotals

# A queue whose counters have not moved for this many of its update periods is idle.
IDLE_PERIODS = 2.5


@dataclass(frozen=True)
class _Step:
    totals: MessageTotals
    at: float  # when the counters were first seen at these values
    anchored: bool  # `at` is when the step happened (not merely when polling began)
    period: float | None = None  # time since the step before, once two anchored steps were seen
    rates: MessageRates | None = None  # derived from the last two steps
    held: MessageRates | None = None  # until then: the broker's last non-zero report


def channel_key(channel: str) -> str:
    """A channel's key among the tracked objects (queues, exchanges and channels share one tracker)."""
    return "c" + channel


class SteadyRates:
    """Steady rates for any number of objects (queues, the whole broker), each under its own key."""

    def __init__(self) -> None:
        self._steps: dict[str, _Step] = {}

    def steady(
        self, key: str, totals: MessageTotals, reported: MessageRates, now: float, scheduled: bool = True
    ) -> MessageRates:
        """The rates for `key` at `now`; `scheduled` false for a poll outside the regular interval."""
        known = self._steps.get(key)
        if not scheduled and known is not None:
            return self._rates(known, reported, now)
        step = self._next(known, totals, now)
        if step.rates is None and reported != MessageRates():
            step = replace(step, held=reported)
        self._steps[key] = step
        return self._rates(step, reported, now)

    def channel_ack_rate(
        self, channel: str, acked: float, reported: float, now: float, scheduled: bool = True
    ) -> float:
        """A channel's ack rate, held between steps as a queue's is (its raw rate reads 0 between them)."""
        return self.steady(
            channel_key(channel), MessageTotals(ack=acked), MessageRates(ack=reported), now, scheduled
        ).ack

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget objects that are gone."""
        wanted = set(keys)
        self._steps = {k: v for k, v in self._steps.items() if k in wanted}

    @staticmethod
    def _next(step: _Step | None, totals: MessageTotals, now: float) -> _Step:
        if step is None:
            return _Step(totals, now, anchored=False)
        if totals == step.totals:
            return step
        if not step.anchored:
            return _Step(totals, now, anchored=True, held=step.held)
        period = now - step.at
        return _Step(
            totals,
            now,
            anchored=True,
            period=period,
            rates=MessageRates(
                publish=max(totals.publish - step.totals.publish, 0) / period,
                deliver=max(totals.deliver - step.totals.deliver, 0) / period,
                ack=max(totals.ack - step.totals.ack, 0) / period,
            ),
        )

    @staticmethod
    def _rates(step: _Step, reported: MessageRates, now: float) -> MessageRates:
        if step.rates is None or step.period is None:
            return reported if step.held is None else step.held
        if now - step.at > IDLE_PERIODS * step.period:
            return MessageRates()
        return replace(reported, publish=step.rates.publish, deliver=step.rates.deliver, ack=step.rates.ack)
