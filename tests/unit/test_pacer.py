"""What the clients table's rate/s says of a producer after a stall (the help screen explains it): the pacer sends
at most a second's worth at once, so for that second a producer shows up to twice its rate, never more."""

from __future__ import annotations

import asyncio
import time

from amqp_lab.engine.clients.producers import Pacer


async def test_after_a_stall_a_producer_catches_up_by_at_most_a_second() -> None:
    pacer = Pacer(20.0)
    await pacer.wait()
    await asyncio.sleep(1.5)  # held up: a slow confirm, a reconnect (the stall itself, not a wait on a result)
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < 1.0:
        await pacer.wait()
        sent += 1
    assert 20 < sent <= 41  # a second's worth at once, then 20 a second: twice the rate at most
