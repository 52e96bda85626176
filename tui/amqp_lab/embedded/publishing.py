"""A channel's publishing side in the embedded broker: content frames assembled into a message, routing, mandatory
returns, direct reply-to, publisher confirms (batched into one multiple ack) and transactions, as RabbitMQ does them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pamqp.commands import Basic, Confirm, Tx

from amqp_lab.amqp.model import DIRECT_REPLY_TO
from amqp_lab.embedded.errors import AmqpFault
from amqp_lab.embedded.queues import Message
from amqp_lab.embedded.vhost import DEFAULT_ALIAS
from amqp_lab.embedded.wire import BODY, HEADER, decode_header, deliver_frame, encode_header_payload, unchecked

if TYPE_CHECKING:
    from amqp_lab.embedded.channel import Channel

NO_ROUTE = 312


@dataclass
class Content:
    """A publish being received: its method, then its header, then body frames until the size is reached."""

    method: Basic.Publish
    header: bytes = b""
    size: int = -1
    properties: Basic.Properties | None = None
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


class Publishing:
    """What a channel does with what is published on it; the channel hands it Basic.Publish, content frames,
    Confirm.Select and Tx methods, and its own acks and rejects while a transaction is open."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.confirming = False
        self.transactional = False
        self._published = 0  # confirm sequence
        self._ack_upto = 0  # confirms not sent yet: one multiple ack for a batch
        self._tx_publishes: list[tuple[Message, bool, int]] = []
        self._tx_settles: list[Callable[[], None]] = []
        self.content_in: Content | None = None  # a message whose frames are still coming

    def settle(self, apply: Callable[[], None]) -> None:
        """An ack or reject: at once, or at commit in a transaction (a rollback leaves it undone)."""
        if self.transactional:
            self._tx_settles.append(apply)
        else:
            apply()

    def abandon(self) -> None:
        """The channel failed: a message half received and confirms not sent are dropped, as RabbitMQ does."""
        self._ack_upto = 0
        self.content_in = None

    def publish(self, m: Basic.Publish) -> None:
        if self.channel.connection.broker.memory_alarm:
            self.channel.connection.block()  # this message is taken; the next frames wait for the alarm to clear
        if m.immediate:
            raise AmqpFault(540, "immediate=true")
        exchange = self.channel.vhost.exchange(m.exchange)
        if exchange.internal:
            raise AmqpFault(
                403, f"cannot publish to internal exchange '{m.exchange}' in vhost '{self.channel.vhost.name}'"
            )
        self.content_in = Content(m)

    def content(self, kind: int, payload: bytes) -> None:
        pending = self.content_in
        if self.channel.closing:
            return
        if pending is None:
            raise AmqpFault(505, f"unexpected content frame on channel {self.channel.number}")
        if kind == HEADER:
            if pending.size >= 0:
                raise AmqpFault(505, "a second content header for one message")
            pending.size, pending.properties = decode_header(payload)
            pending.header = payload
            limit = self.channel.connection.broker.options.max_message_size
            if pending.size > limit:  # refused before a byte of it is buffered
                size = pending.size
                self.content_in = None
                raise AmqpFault(406, f"message size {size} is larger than configured max size {limit}")
        elif kind == BODY:
            if pending.size < 0:
                raise AmqpFault(505, "content body before its header")
            pending.parts.append(payload)
            pending.received += len(payload)
            if pending.received > pending.size:
                raise AmqpFault(501, f"content body of {pending.received} bytes, header said {pending.size}")
        if pending.received == pending.size:
            self.content_in = None
            assert pending.properties is not None
            method = pending.method
            message = Message(
                method.exchange,
                method.routing_key,
                pending.header,
                b"".join(pending.parts),
                pending.properties,
            )
            self._received(message, method.mandatory)

    def _received(self, message: Message, mandatory: bool) -> None:
        self.channel.stats["publish"] += 1
        if message.properties.reply_to == DIRECT_REPLY_TO:
            if self.channel.reply_token is None:
                raise AmqpFault(406, "fast reply consumer does not exist")
            message.properties.reply_to = f"{DIRECT_REPLY_TO}.{self.channel.reply_token}"
            message.header = encode_header_payload(len(message.body), message.properties)
        seq = 0
        if self.confirming:
            self._published += 1
            seq = self._published
        if self.transactional:
            self._tx_publishes.append((message, mandatory, seq))
        else:
            self._route(message, mandatory, seq)

    def _route(self, message: Message, mandatory: bool, seq: int) -> None:
        vhost = self.channel.vhost
        returned_anyway = False
        if message.exchange in ("", DEFAULT_ALIAS) and message.routing_key.startswith(DIRECT_REPLY_TO + "."):
            routed = self._reply_to(message)
            refused = False
            # RabbitMQ 3.10 and 4.0 return a mandatory answer to direct reply-to even when they deliver it: the
            # pseudo-queue is not a route (docs/rabbitmq-versions.md).
            returned_anyway = routed
            copies = int(routed)
        else:
            queues = vhost.route(message.exchange, message.routing_key, message.headers)
            routed, copies = bool(queues), len(queues)
            refused = False
            for queue in queues:
                if not queue.enqueue(message):
                    refused = True
        vhost.count_publish(message.exchange, copies)
        if (not routed or returned_anyway) and mandatory:
            self.flush_confirms()  # a return goes before the confirm of its message, and after earlier ones
            reply = unchecked(
                Basic.Return,
                reply_code=NO_ROUTE,
                reply_text="NO_ROUTE",
                exchange=message.exchange,
                routing_key=message.routing_key,
            )
            self.channel.send_content(reply, message)
        if seq:
            if refused:
                self.flush_confirms()
                self.channel.connection.send_method(
                    self.channel.number, Basic.Nack(delivery_tag=seq, multiple=False, requeue=False)
                )
            else:
                self._ack_upto = seq
                self.channel.stats["confirm"] += 1

    def _reply_to(self, message: Message) -> bool:
        token = message.routing_key[len(DIRECT_REPLY_TO) + 1 :]
        channel = self.channel.connection.broker.reply_channels.get(token)
        if channel is None or channel.reply_consumer is None:
            return False
        method = deliver_frame(
            channel.number, channel.reply_consumer, channel.next_tag(), False, message.exchange, message.routing_key
        )
        channel.send_content(method, message)
        return True

    def flush_confirms(self) -> None:
        """Confirms gathered in a batch of input go out as one basic.ack with multiple."""
        if self._ack_upto:
            upto, self._ack_upto = self._ack_upto, 0
            self.channel.connection.send_method(self.channel.number, Basic.Ack(delivery_tag=upto, multiple=True))

    def confirm_select(self, m: Confirm.Select) -> None:
        if self.transactional:
            raise AmqpFault(406, "cannot switch from tx to confirm mode")
        self.confirming = True
        self.channel.reply(Confirm.SelectOk(), m.nowait)

    def tx_select(self, m: Tx.Select) -> None:
        if self.confirming:
            raise AmqpFault(406, "cannot switch from confirm to tx mode")
        self.transactional = True
        self.channel.reply(Tx.SelectOk())

    def tx_commit(self, m: Tx.Commit) -> None:
        if not self.transactional:
            raise AmqpFault(406, "channel is not transactional")
        publishes, self._tx_publishes = self._tx_publishes, []
        settles, self._tx_settles = self._tx_settles, []
        for message, mandatory, seq in publishes:
            self._route(message, mandatory, seq)
        for settle in settles:
            settle()
        self.channel.reply(Tx.CommitOk())

    def tx_rollback(self, m: Tx.Rollback) -> None:
        if not self.transactional:
            raise AmqpFault(406, "channel is not transactional")
        self._tx_publishes.clear()
        self._tx_settles.clear()
        self.channel.reply(Tx.RollbackOk())
