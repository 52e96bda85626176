"""One queue watched up close: its detail, the activity of its consumers' channels and its bindings, one look at a
time, with rates held steady between the broker's statistics steps (`rates.SteadyRates`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import Binding, ChannelActivity, QueueDetail
from amqp_lab.broker.rates import SteadyRates, channel_key

CONSUMERS_SHOWN = 20  # channels asked about per look: detail only for what fits on a screen
BINDINGS_EVERY = 5  # looks between re-reads of the bindings, which rarely change


@dataclass(frozen=True)
class QueueLook:
    detail: QueueDetail  # its rates steady
    activity: dict[str, ChannelActivity]  # by channel name, for the first CONSUMERS_SHOWN consumers' channels
    bound_by: list[Binding]  # as last read (every BINDINGS_EVERY looks)


class QueueWatch:
    def __init__(self, management: ManagementClient, vhost: str, name: str) -> None:
        self.management = management
        self.vhost = vhost
        self.name = name
        self.rates = SteadyRates()
        self._looks = 0
        self._bound_by: list[Binding] = []

    async def look(self) -> QueueLook:
        """What the management API says now; raises BrokerError (ManagementObjectGone once the queue is gone)."""
        management = self.management
        detail = await management.queue(self.vhost, self.name)
        channels = list(dict.fromkeys(c.channel for c in detail.consumers))[:CONSUMERS_SHOWN]
        answers = await asyncio.gather(
            *(management.channel_activity(name) for name in channels), return_exceptions=True
        )
        activity = {a.name: a for a in answers if isinstance(a, ChannelActivity)}
        if self._looks % BINDINGS_EVERY == 0:
            self._bound_by = await management.queue_bindings(self.vhost, self.name)
        self._looks += 1
        return self._steady(detail, activity)

    def _steady(self, detail: QueueDetail, activity: dict[str, ChannelActivity]) -> QueueLook:
        now = time.monotonic()
        stats = detail.stats
        stats = replace(stats, rates=self.rates.steady(stats.key, stats.totals, stats.rates, now))
        activity = {
            name: replace(a, ack_rate=self.rates.channel_ack_rate(name, a.acked, a.ack_rate, now))
            for name, a in activity.items()
        }
        self.rates.keep_only([stats.key, *map(channel_key, activity)])
        return QueueLook(replace(detail, stats=stats), activity, self._bound_by)
