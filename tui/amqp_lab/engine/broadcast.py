"""A run's snapshots on the control exchange, for anyone who watches (`amqp-lab watch`, `W` in the explorer and
the pages of `amqp-lab serve`).

Four times a second the run publishes its newest snapshot with the key `watch.snapshot.<run id>`; a watcher
that joins says hello (`watch.hello.<run id>`) and is answered with what it needs to draw the run: the scenario
and the broker's masked address. At the end the run publishes its last snapshot and `watch.end.<run id>` with
what cleanup left. Snapshots expire after a few seconds: a watcher that falls behind skips, never piles up.

The run's hello queue is exclusive and bound to the exchange: the auto-delete exchange goes with the last run
or agent that uses it, so nothing of the broadcast outlives the run. A broker that refuses any of it (a user
without configure rights on the exchange) or goes away costs the broadcast, never the run: it says so once in
the events and tries again every two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage

from amqp_lab.broker.connection import connect_first
from amqp_lab.config import Settings
from amqp_lab.engine.agent import declare_control
from amqp_lab.engine.events import EventKind
from amqp_lab.engine.snapshot import RunSnapshot, snapshot_adapter
from amqp_lab.scenario.model import Scenario

EVERY: Final = 0.25  # seconds between snapshots sent
RETRY: Final = 2.0  # seconds between attempts to open the broadcast again
EXPIRES: Final = 4.0  # seconds a snapshot waits for a watcher before the broker drops it
SNAPSHOT, HELLO, END = "watch.snapshot", "watch.hello", "watch.end"
# Whatever a broker or a dropped link throws at the broadcast (aiormq's closed channel is a RuntimeError): the
# broadcast is not the run, and nothing of it may end the run.
FAILURES = (Exception,)


def intro(scenario: Scenario, broker: str) -> bytes:
    """What a watcher needs before the first snapshot: the run's scenario and where it runs."""
    return json.dumps({"scenario": scenario.model_dump(mode="json", by_alias=True), "broker": broker}).encode()


class Broadcast:
    """Takes each snapshot the run makes and sends the newest on, four times a second, while the run goes."""

    def __init__(
        self, settings: Settings, scenario: Scenario, run_id: str, say: Callable[[EventKind, str, str], None]
    ) -> None:
        self._settings = settings
        self._scenario = scenario
        self._run_id = run_id
        self._say = say  # RunContext.event: a broadcast that cannot start says so in the run's events
        self._latest: RunSnapshot | None = None
        self._sent: RunSnapshot | None = None
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None

    def take(self, snapshot: RunSnapshot) -> None:
        self._latest = snapshot

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._send_on())

    async def _send_on(self) -> None:
        """Sends until cancelled; a lost connection is opened again (after an outage, say) every RETRY seconds."""
        said = False
        while True:
            try:
                await self._open()
                said = False
                while True:
                    await self._send_latest()
                    await asyncio.sleep(EVERY)
            except FAILURES as exc:
                self._exchange = None
                if not said:
                    self._say(EventKind.INFO, "run", f"watchers see nothing for now: {type(exc).__name__}: {exc}")
                    said = True
                await self._drop_connection()
                await asyncio.sleep(RETRY)

    async def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(*FAILURES):
                await self._connection.close()
            self._connection = None

    async def _open(self) -> None:
        self._connection = await connect_first(self._settings, f"broadcast of run {self._run_id}")
        self._channel = channel = await self._connection.channel()
        exchange = await declare_control(channel)
        hellos = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await hellos.bind(exchange, f"{HELLO}.{self._run_id}")
        await hellos.consume(self._answer, no_ack=True)
        self._exchange = exchange

    async def _answer(self, message: AbstractIncomingMessage) -> None:
        if self._channel is None or not message.reply_to:
            return
        body = intro(self._scenario, self._settings.primary.display())
        await self._channel.default_exchange.publish(
            aio_pika.Message(body, type="intro", content_type="application/json", expiration=EXPIRES),
            routing_key=message.reply_to,
        )

    async def _send_latest(self) -> None:
        snapshot = self._latest
        if snapshot is None or snapshot is self._sent or self._exchange is None:
            return
        self._sent = snapshot
        body = snapshot_adapter().dump_json(snapshot)
        await self._exchange.publish(
            aio_pika.Message(body, type="snapshot", content_type="application/json", expiration=EXPIRES),
            routing_key=f"{SNAPSHOT}.{self._run_id}",
        )

    async def close(self, leftovers: list[str], cleanup_error: str | None) -> None:
        """The run's last snapshot and how its cleanup went, then the broadcast's connection closes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *FAILURES):
                await self._task
        with contextlib.suppress(*FAILURES):
            if self._exchange is not None:
                await self._send_latest()
                end = json.dumps({"leftovers": leftovers, "cleanup_error": cleanup_error}).encode()
                await self._exchange.publish(
                    aio_pika.Message(end, type="end", content_type="application/json", expiration=EXPIRES),
                    routing_key=f"{END}.{self._run_id}",
                )
        await self._drop_connection()
