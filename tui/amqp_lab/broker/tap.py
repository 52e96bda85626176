"""Watch the messages flowing through an exchange without taking them from anyone.

The tap declares its own fanout exchange, bound exchange-to-exchange to the
tapped one with a copy of each of its binding keys, and an exclusive queue
bound to that. So the tap sees exactly the messages that the exchange routes
somewhere, and never makes a message routable that was not: mandatory returns
and alternate exchanges behave as before. Everything it declares dies with
its connection: the queue is exclusive, and the auto-delete exchange goes
with the queue's binding, taking its binding to the tapped exchange along.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage

from amqp_lab.broker.connection import connect_first
from amqp_lab.broker.errors import BrokerError, ReadOnlyRefused
from amqp_lab.broker.models import Binding, Exchange
from amqp_lab.config import Settings

TAPPABLE = ("direct", "fanout", "topic", "headers")
TAP_PREFIX = "amqp-lab.tap."
QUEUE_LIMIT = 1000  # messages the tap's queue holds before dropping its oldest: a tap never fills the broker
KEPT = 500  # messages the tap remembers for display


class TapRefused(BrokerError):
    """The exchange cannot be tapped; the message says what can be done instead."""


@dataclass(frozen=True)
class TappedMessage:
    seen_at: float  # time.time()
    routing_key: str
    properties: Mapping[str, Any]
    headers: Mapping[str, Any]
    body: bytes


def refusal(exchange: Exchange) -> str | None:
    """Why an exchange cannot be tapped, with what to do instead; None when it can."""
    if exchange.name == "":
        return (
            "the default exchange cannot be tapped: RabbitMQ refuses bindings to or from it. "
            "Peek at the destination queue instead (its name is the routing key), "
            "or tap the exchange the publisher could use"
        )
    if exchange.type not in TAPPABLE:
        return f"the lab taps {', '.join(TAPPABLE)} exchanges; {exchange.name!r} is of type {exchange.type!r}"
    return None


def binding_copies(exchange: Exchange, bindings: list[Binding]) -> list[tuple[str, Mapping[str, Any]]]:
    """(routing key, arguments) for each distinct binding of the exchange, so the tap matches what they match."""
    routed = [b for b in bindings if b.source == exchange.name and not b.destination.startswith(TAP_PREFIX)]
    if exchange.type == "fanout":
        return [("", {})] if routed else []  # with no binding the tap's own would make messages routable
    copies: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for binding in routed:
        arguments = dict(binding.arguments) if exchange.type == "headers" else {}
        copies[repr((binding.routing_key, sorted(arguments.items())))] = (binding.routing_key, arguments)
    return list(copies.values())


class Tap:
    """One tap on one exchange, on a connection of its own. Use start() and stop()."""

    def __init__(self, settings: Settings, exchange: Exchange) -> None:
        self.settings = replace(settings, vhost=exchange.vhost)
        self.exchange = exchange
        self.name = f"{TAP_PREFIX}{secrets.token_hex(4)}"
        self.messages: deque[TappedMessage] = deque(maxlen=KEPT)
        self.seen = 0
        self.copies: list[tuple[str, Mapping[str, Any]]] = []
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._tap_exchange: AbstractExchange | None = None

    async def start(self, bindings: list[Binding]) -> None:
        if self.settings.read_only:
            raise ReadOnlyRefused("read-only mode: a tap declares an exchange and a queue on the broker")
        reason = refusal(self.exchange)
        if reason is not None:
            raise TapRefused(reason)
        self._connection = await connect_first(self.settings)
        try:
            self._channel = await self._connection.channel()
            self._tap_exchange = await self._channel.declare_exchange(
                self.name, aio_pika.ExchangeType.FANOUT, durable=False, auto_delete=True
            )
            queue = await self._channel.declare_queue(
                self.name, exclusive=True, auto_delete=True, arguments={"x-max-length": QUEUE_LIMIT}
            )
            await queue.bind(self._tap_exchange)
            await self.follow(bindings)
            await queue.consume(self._on_message, no_ack=True)
        except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPError) as exc:
            await self.stop()
            raise TapRefused(f"the broker refused the tap on {self.exchange.name!r}: {exc}") from None

    async def follow(self, bindings: list[Binding]) -> None:
        """Copy the exchange's binding keys that the tap does not have yet (bindings added since it started)."""
        assert self._tap_exchange is not None
        for key, arguments in binding_copies(self.exchange, bindings):
            if (key, arguments) not in self.copies:
                await self._tap_exchange.bind(self.exchange.name, key, arguments=dict(arguments) or None)
                self.copies.append((key, arguments))

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.seen += 1
        properties = message.properties
        self.messages.append(
            TappedMessage(
                seen_at=time.time(),
                routing_key=message.routing_key or "",
                properties={
                    name: getattr(properties, name)
                    for name in (
                        "content_type",
                        "content_encoding",
                        "delivery_mode",
                        "priority",
                        "correlation_id",
                        "reply_to",
                        "expiration",
                        "message_id",
                        "timestamp",
                        "type",
                        "user_id",
                        "app_id",
                    )
                    if getattr(properties, name, None) not in (None, "")
                },
                headers=dict(message.headers or {}),
                body=message.body,
            )
        )

    async def stop(self) -> None:
        """Delete what the tap declared and close its connection; safe to call twice."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self._channel is not None and not self._channel.is_closed:
                await self._channel.exchange_delete(self.name)
                await self._channel.queue_delete(self.name)
        except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPError, ConnectionError):
            pass  # closing the connection below removes both anyway
        finally:
            await connection.close()
