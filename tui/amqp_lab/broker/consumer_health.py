"""Which consumers of a queue make progress, judged from poll to poll of their channels.

The management API tells how many deliveries a channel holds unacked and how
many it has acked so far, not how old each delivery is. A channel that holds
unacked messages while its ack count stands still is stuck; how long it has
stood still is a lower bound on the age of its oldest delivery, which is what
RabbitMQ's consumer timeout measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from amqp_lab.broker.models import ChannelActivity, Consumer

TIMEOUT_WARNING = 0.5  # warn once a delivery has been held for half the consumer timeout


@dataclass(frozen=True)
class ConsumerHealth:
    consumer: Consumer
    activity: ChannelActivity | None  # None: the channel was not found (closed meanwhile)
    held_for: float  # seconds the channel has held unacked messages without acking any
    stuck: bool
    timeout_in: float | None  # seconds until the consumer timeout may close the channel, once worth saying

    @property
    def flags(self) -> list[str]:
        flags = []
        if self.stuck:
            flags.append(f"stuck {self.held_for:.0f} s")
        if self.timeout_in is not None:
            flags.append(f"consumer timeout in {max(self.timeout_in, 0):.0f} s")
        return flags


class ProgressWatch:
    """Remembers, per channel, since when it has held unacked messages without an ack."""

    def __init__(self, stuck_after: float) -> None:
        self.stuck_after = stuck_after
        self._since: dict[str, tuple[int, float]] = {}  # channel -> (acked when last moved, when)

    def judge(
        self,
        consumers: tuple[Consumer, ...],
        activity: dict[str, ChannelActivity],
        timeout_s: float,
        now: float,
    ) -> list[ConsumerHealth]:
        held = {name: self._held_for(found, now) for name, found in activity.items()}
        for name in [n for n in self._since if n not in activity]:
            del self._since[name]
        result = []
        for consumer in consumers:
            found = activity.get(consumer.channel)
            held_for = held.get(consumer.channel, 0.0)
            warn = consumer.ack_required and held_for >= TIMEOUT_WARNING * timeout_s
            result.append(
                ConsumerHealth(
                    consumer=consumer,
                    activity=found,
                    held_for=held_for,
                    stuck=consumer.ack_required and held_for >= self.stuck_after,
                    timeout_in=timeout_s - held_for if warn else None,
                )
            )
        return result

    def _held_for(self, activity: ChannelActivity, now: float) -> float:
        if activity.unacked == 0:
            self._since.pop(activity.name, None)
            return 0.0
        last = self._since.get(activity.name)
        if last is None or last[0] != activity.acked:
            self._since[activity.name] = (activity.acked, now)
            return 0.0
        return now - last[1]
