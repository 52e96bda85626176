"""Publishing for every simulated client: ids and timestamps on each message, confirms, returns, the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import aiormq.channel
import aiormq.connection
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic

from amqp_lab.engine.context import RunContext
from amqp_lab.engine.ledger import ID_HEADER, TIME_HEADER, stamp
from amqp_lab.scenario.plan import PublishMode

NOT_IMPLEMENTED = 540
PERSISTENT, TRANSIENT = 2, 1  # delivery_mode
# What a publish raises when the connection went away under it: the broker may or may not have the message.
LINK_LOST = (ConnectionError, aiormq.exceptions.ChannelInvalidStateError)


def link_broke(exc: BaseException) -> bool:
    """Whether an exception caught as (*LINK_LOST, CancelledError) means the connection went away: a
    CancelledError counts only when it comes from below, not from a cancel of this task (aiormq cancels
    whatever waits on a connection it found stuck, with no frame within its heartbeat grace)."""
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is not None and not task.cancelling()
    return isinstance(exc, LINK_LOST)


def connection_gone(connection: AbstractConnection | None) -> bool:
    """Whether a connection has gone away underneath: aiormq closes it and its channels at once, but aio-pika
    tells the close callbacks only later (a second and more on a busy machine), so ask aiormq."""
    if connection is None or connection.is_closed:
        return True
    transport = connection.transport
    return transport is None or transport.connection.is_closed


class ImmediateRefused(Exception):
    """RabbitMQ 3.0+ closed the connection: immediate=true is not implemented (540)."""


def reply_code(exc: BaseException) -> int | None:
    """The AMQP reply code a broker closed a channel or connection with, when there is one."""
    for arg in getattr(exc, "args", ()):
        code = getattr(arg, "reply_code", None)
        if isinstance(code, int):
            return code
        if isinstance(arg, int) and 300 <= arg < 600:
            return arg
    # aiormq raises one class per code without the code itself: its own mappings say which.
    for code, kind in (*aiormq.channel.EXCEPTION_MAPPING.items(), *aiormq.connection.EXCEPTION_MAPPING.items()):
        if isinstance(kind, type) and isinstance(exc, kind):
            return code
    return None


@dataclass(frozen=True)
class Letter:
    """One message as the ledger knows it: delivering it again (after a lost connection) keeps its id."""

    msg_id: int
    exchange: str
    routing_key: str
    headers: Mapping[str, Any]
    body: bytes
    properties: Basic.Properties
    mandatory: bool
    immediate: bool
    queues: frozenset[str]  # where the ledger expects it


class Outbox:
    """Publishes on one channel and keeps the ledger right about each message's fate.

    It publishes on aio-pika's channel's aiormq channel: aio-pika's message and exchange objects cost a tenth of
    a full-speed run's CPU, for nothing the lab uses (profiled; see bench/workers_throughput.py).

    aiormq hands a mandatory message's return to the publisher only on a
    channel with publisher confirms (without them it logs and drops it), so a
    channel that publishes mandatory messages has confirms on whatever the mode.
    """

    def __init__(self, ctx: RunContext, channel: AbstractChannel, mode: PublishMode, confirms: bool) -> None:
        self.ctx = ctx
        self.channel = channel
        self.mode = mode
        self.confirms = confirms
        self._tx_lock = asyncio.Lock()

    def letter(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        persistent: bool,
        mandatory: bool = False,
        immediate: bool = False,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Letter:
        """A message with its ledger id, entered in the ledger as published (its copies expected)."""
        ledger = self.ctx.ledger
        msg_id = ledger.next_id()
        stamped = {ID_HEADER: msg_id, TIME_HEADER: stamp(), **(headers or {})}
        properties = Basic.Properties(
            headers=stamped,
            delivery_mode=PERSISTENT if persistent else TRANSIENT,
            reply_to=reply_to,
            correlation_id=correlation_id,
            message_id=str(msg_id),
        )
        queues = ledger.published(msg_id, exchange, routing_key, stamped, mandatory)
        if self.ctx.on_publish is not None:
            self.ctx.on_publish(exchange, routing_key)
        return Letter(msg_id, exchange, routing_key, stamped, body, properties, mandatory, immediate, queues)

    def again(self, letter: Letter) -> Letter:
        """The letter, to deliver again after an outage: expected where the topology routes it now."""
        queues = self.ctx.ledger.resent(
            letter.msg_id, letter.exchange, letter.routing_key, letter.headers, letter.mandatory, letter.queues
        )
        return replace(letter, queues=queues)

    async def send(self, exchange: str, routing_key: str, body: bytes, **options: Any) -> str:
        """Publish one new message once; see `deliver`."""
        return await self.deliver(self.letter(exchange, routing_key, body, **options))

    async def deliver(self, letter: Letter) -> str:
        """Publish; "confirmed", "sent" (no confirms), "returned" or "nacked".

        Raises one of LINK_LOST when the connection goes away first: the caller
        decides whether to deliver the same letter again on a new channel.
        """
        ledger = self.ctx.ledger
        key = letter.routing_key
        channel = await self.channel.get_underlay_channel()
        try:
            if self.mode == "transactions":
                async with self._tx_lock:
                    await channel.tx_select()
                    result = await self._publish(channel, letter)
                    await channel.tx_commit()
            else:
                result = await self._publish(channel, letter)
        except aiormq.exceptions.DeliveryError:
            ledger.nacked(letter.msg_id, letter.exchange, key, letter.headers)
            return "nacked"
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            if letter.immediate and reply_code(exc) == NOT_IMPLEMENTED:
                ledger.refused(letter.msg_id, letter.exchange, key, letter.headers)
                raise ImmediateRefused(str(exc)) from exc
            raise
        if self.confirms and not isinstance(result, Basic.Ack):
            ledger.returned(letter.msg_id, letter.exchange, key, letter.headers)
            return "returned"
        if self.confirms or self.mode == "transactions":
            ledger.confirmed()
            return "confirmed"
        return "sent"

    @staticmethod
    def _publish(channel: aiormq.abc.AbstractChannel, letter: Letter) -> Awaitable[object]:
        # Not a coroutine of its own: each coroutine between the publisher and aiormq is resumed at every step
        # of every publish.
        return channel.basic_publish(
            letter.body,
            exchange=letter.exchange,
            routing_key=letter.routing_key,
            properties=letter.properties,
            mandatory=letter.mandatory,
            immediate=letter.immediate,
        )
