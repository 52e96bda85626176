"""Publish one test message, as a real client would, and say what the broker did with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.exceptions import DeliveryError

from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.errors import BrokerError, ReadOnlyRefused
from amqp_lab.config import Settings


class SendRefused(BrokerError):
    """The broker refused the publish (say, the exchange does not exist)."""


@dataclass(frozen=True)
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    headers: Mapping[str, Any]
    content_type: str | None = None
    persistent: bool = False
    expiration_ms: int | None = None
    mandatory: bool = True


@dataclass(frozen=True)
class Sent:
    routed: bool | None  # None: not mandatory, so the broker does not say
    reply: str  # what the broker answered, in its words


async def send(settings: Settings, vhost: str, message: OutgoingMessage) -> Sent:
    """Publish with publisher confirms; a mandatory message nobody takes comes back as 312 NO_ROUTE."""
    if settings.read_only:
        raise ReadOnlyRefused("read-only mode: publishing a test message changes the broker")
    connection = await connect_first(replace(settings, vhost=vhost))
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = (
            channel.default_exchange
            if message.exchange == ""
            else await channel.get_exchange(message.exchange, ensure=False)
        )
        outgoing = aio_pika.Message(
            message.body,
            headers=dict(message.headers) or None,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if message.persistent else None,
            expiration=message.expiration_ms / 1000 if message.expiration_ms is not None else None,
        )
        try:
            await exchange.publish(outgoing, message.routing_key, mandatory=message.mandatory)
        except DeliveryError as exc:
            returned = exc.message
            if returned is not None:
                return Sent(False, "returned: 312 NO_ROUTE (no queue matched; the message came back)")
            return Sent(False, f"not confirmed: {exc}")
        except aiormq.exceptions.ChannelClosed as exc:
            raise SendRefused(f"the broker refused the publish: {_reply_text(exc)}") from None
        if not message.mandatory:
            return Sent(None, "confirmed; not mandatory, so the broker does not say whether a queue took it")
        return Sent(True, "routed and confirmed")
    finally:
        await connection.close()


def _reply_text(exc: aiormq.exceptions.ChannelClosed) -> str:
    code, text = (*exc.args, None, None)[:2]
    return f"{code} {text}" if code is not None else str(exc)
