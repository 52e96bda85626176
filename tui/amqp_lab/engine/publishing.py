"""Publishing for every simulated client: ids and timestamps on each message, confirms, returns, the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractExchange
from pamqp.commands import Basic

from amqp_lab.engine.context import RunContext
from amqp_lab.engine.ledger import ID_HEADER, TIME_HEADER, stamp
from amqp_lab.scenario.plan import PublishMode
from amqp_lab.scenario.topology import DEFAULT_EXCHANGE

NOT_IMPLEMENTED = 540


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
    return NOT_IMPLEMENTED if isinstance(exc, aiormq.exceptions.ConnectionNotImplemented) else None


class Outbox:
    """Publishes on one channel and keeps the ledger right about each message's fate.

    aiormq hands a mandatory message's return to the publisher only on a
    channel with publisher confirms (without them it logs and drops it), so a
    channel that publishes mandatory messages has confirms on whatever the mode.
    """

    def __init__(self, ctx: RunContext, channel: AbstractChannel, mode: PublishMode, confirms: bool) -> None:
        self.ctx = ctx
        self.channel = channel
        self.mode = mode
        self.confirms = confirms
        self._exchanges: dict[str, AbstractExchange] = {}
        self._tx_lock = asyncio.Lock()

    async def _exchange(self, name: str) -> AbstractExchange:
        found = self._exchanges.get(name)
        if found is None:
            if name == DEFAULT_EXCHANGE:
                found = self.channel.default_exchange
            else:
                found = await self.channel.get_exchange(name, ensure=False)
            self._exchanges[name] = found
        return found

    async def send(
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
    ) -> str:
        """Publish one message; "confirmed", "sent" (no confirms), "returned" or "nacked"."""
        ledger = self.ctx.ledger
        msg_id = ledger.next_id()
        stamped = {ID_HEADER: msg_id, TIME_HEADER: stamp(), **(headers or {})}
        message = aio_pika.Message(
            body,
            headers=stamped,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT,
            reply_to=reply_to,
            correlation_id=correlation_id,
            message_id=str(msg_id),
        )
        ledger.published(msg_id, exchange, routing_key, stamped, mandatory)
        if self.ctx.on_publish is not None:
            self.ctx.on_publish(exchange, routing_key)
        target = await self._exchange(exchange)
        try:
            if self.mode == "transactions":
                async with self._tx_lock:
                    transaction = self.channel.transaction()
                    await transaction.select()
                    result = await target.publish(message, routing_key, mandatory=mandatory, immediate=immediate)
                    await transaction.commit()
            else:
                result = await target.publish(message, routing_key, mandatory=mandatory, immediate=immediate)
        except aio_pika.exceptions.DeliveryError:
            ledger.nacked(msg_id, exchange, routing_key, stamped)
            return "nacked"
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            if immediate and reply_code(exc) == NOT_IMPLEMENTED:
                ledger.refused(msg_id, exchange, routing_key, stamped)
                raise ImmediateRefused(str(exc)) from exc
            raise
        if self.confirms and not isinstance(result, Basic.Ack):
            ledger.returned(msg_id, exchange, routing_key, stamped)
            return "returned"
        if self.confirms or self.mode == "transactions":
            ledger.confirmed()
            return "confirmed"
        return "sent"
