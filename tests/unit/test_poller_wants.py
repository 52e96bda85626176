"""What the screens want polled: a change that needs what the last look did not fetch is asked for at once; one
that only drops listings (the explorer left for help or the builder, a tab that shows fewer) waits for the next
interval, and costs the broker nothing meanwhile."""

from __future__ import annotations

from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.poller import ManagementPoller, Wanted
from amqp_lab.config import build

SETTINGS = build({"amqp_url": "amqp://guest:guest@rabbit:5672/"})


async def test_only_a_change_that_needs_more_asks_the_broker_at_once() -> None:
    async with ManagementClient(SETTINGS) as client:  # never asked: no look is taken here
        poller = ManagementPoller(client, 600.0, lambda _: None)
        asked: list[Wanted] = []
        poller.refresh_now = lambda: asked.append(poller.wanted)  # type: ignore[method-assign]
        exchanges = Wanted(listings=frozenset(["exchanges"]))
        consumers = Wanted(listings=frozenset(["consumers", "channels"]))
        steps = [
            (exchanges, True),  # the exchanges tab: a listing the last look did not fetch
            (Wanted(), False),  # the queues tab, or the explorer left: fewer
            (Wanted(), False),  # the same again
            (consumers, True),
            (Wanted(listings=frozenset(["channels"])), False),  # fewer, not other
            (Wanted(listings=frozenset(["exchanges"])), True),  # as many, but another
            (Wanted(name_filter="orders"), True),
            (Wanted(name_filter="orders", vhost="shop"), True),
            (Wanted(name_filter="orders", vhost="shop", sort=("messages", True)), True),
        ]
        for wanted, asks in steps:
            before = len(asked)
            poller.wanted = wanted
            assert poller.wanted == wanted
            assert len(asked) == before + asks, f"{wanted}: {'asked' if not asks else 'not asked'} at once"
