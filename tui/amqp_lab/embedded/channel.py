"""One channel of a connection to the embedded broker: declarations, consuming within prefetch, basic.get and
acknowledgements, as RabbitMQ does them; what is published on it is `embedded.publishing`'s."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pamqp.base import Frame as Method
from pamqp.commands import Basic, Confirm, Exchange, Queue, Tx
from pamqp.commands import Channel as ChannelMethods

from amqp_lab.amqp.model import DIRECT_REPLY_TO
from amqp_lab.embedded.errors import AmqpFault, limit
from amqp_lab.embedded.publishing import Publishing
from amqp_lab.embedded.queues import Message, Queued
from amqp_lab.embedded.queues import Queue as BrokerQueue
from amqp_lab.embedded.vhost import server_name
from amqp_lab.embedded.wire import (
    content,
    deliver_frame,
    encode_method,
    unchecked,
)

if TYPE_CHECKING:
    from amqp_lab.embedded.connection import Connection
    from amqp_lab.embedded.vhost import Vhost


@dataclass(eq=False)
class ChannelConsumer:
    """A basic.consume: delivers through its channel while its own and the channel's prefetch allow."""

    channel: Channel
    queue: BrokerQueue
    tag: str
    no_ack: bool
    prefetch: int  # per consumer (basic.qos global=false when it was created); 0: no limit
    exclusive: bool = False
    unacked: int = 0

    def has_room(self) -> bool:
        return self.channel.has_room(self)

    def deliver(self, queue: BrokerQueue, queued: Queued) -> None:
        self.channel.deliver(self, queue, queued)

    def queue_deleted(self) -> None:
        self.channel.consumer_cancelled_by_broker(self)


@dataclass
class Delivery:
    consumer: ChannelConsumer | None  # None for basic.get
    queue: BrokerQueue
    queued: Queued


class Channel:
    def __init__(self, connection: Connection, number: int, vhost: Vhost) -> None:
        self.connection = connection
        self.number = number
        self.vhost = vhost
        self.consumers: dict[str, ChannelConsumer] = {}
        self.unacked: dict[int, Delivery] = {}
        self._next_tag = 0
        self.prefetch = 0  # for consumers created next (global=false)
        self.global_prefetch = 0  # shared by the channel's consumers (global=true)
        self.publishing = publishing = Publishing(self)
        self.closing = False
        self.reply_token: str | None = None  # consuming amq.rabbitmq.reply-to
        self.reply_consumer: str | None = None
        self.stats: dict[str, int] = dict.fromkeys(("publish", "deliver", "ack", "confirm", "redeliver"), 0)
        self._handlers: dict[type[Method], Callable[[Any], None]] = {
            ChannelMethods.Close: self._close,
            ChannelMethods.CloseOk: self._close_ok,
            ChannelMethods.Flow: lambda m: self.reply(ChannelMethods.FlowOk(active=m.active)),
            Exchange.Declare: self._exchange_declare,
            Exchange.Delete: self._exchange_delete,
            Exchange.Bind: self._exchange_bind,
            Exchange.Unbind: self._exchange_unbind,
            Queue.Declare: self._queue_declare,
            Queue.Bind: self._queue_bind,
            Queue.Unbind: self._queue_unbind,
            Queue.Purge: self._queue_purge,
            Queue.Delete: self._queue_delete,
            Basic.Qos: self._qos,
            Basic.Consume: self._consume,
            Basic.Cancel: self._cancel,
            Basic.Publish: publishing.publish,
            Basic.Get: self._get,
            Basic.Ack: self._ack,
            Basic.Nack: self._nack,
            Basic.Reject: self._reject,
            Basic.Recover: self._recover,
            Basic.RecoverAsync: self._recover,
            Confirm.Select: publishing.confirm_select,
            Tx.Select: publishing.tx_select,
            Tx.Commit: publishing.tx_commit,
            Tx.Rollback: publishing.tx_rollback,
        }

    # Plumbing

    def method(self, method: Method) -> None:
        if self.closing:
            if isinstance(method, ChannelMethods.Close | ChannelMethods.CloseOk):
                self._handlers[type(method)](method)
            return  # after Channel.Close, everything but its answer is dropped
        if self.publishing.content_in is not None:
            raise AmqpFault(505, f"expected content header for class 60, got {method.name}")
        handler = self._handlers.get(type(method))
        if handler is None:
            raise AmqpFault(540, f"{method.name} is not implemented")
        handler(method)

    def reply(self, method: Method, nowait: bool = False) -> None:
        if not nowait:
            self.connection.send_method(self.number, method)

    def fail(self, fault: AmqpFault, method: Method) -> None:
        """A soft error: Channel.Close with the code; the channel is gone once the client answers CloseOk."""
        self.publishing.abandon()
        self._release()
        self.closing = True
        index = method.index
        self.connection.send_method(
            self.number,
            ChannelMethods.Close(
                reply_code=fault.code, reply_text=fault.text, class_id=index >> 16, method_id=index & 0xFFFF
            ),
        )

    def _close(self, method: ChannelMethods.Close) -> None:
        self.publishing.flush_confirms()
        self._release()
        self.connection.send_method(self.number, ChannelMethods.CloseOk())
        self.connection.forget(self)

    def _close_ok(self, method: ChannelMethods.CloseOk) -> None:
        self.connection.forget(self)

    def closed(self) -> None:
        """The connection went away: as a channel close, without a word on the wire."""
        self._release()

    def _release(self) -> None:
        """Consumers go; unacked messages go back to their queues (where they were), marked redelivered."""
        for consumer in list(self.consumers.values()):
            self._remove_consumer(consumer)
        for delivery in sorted(self.unacked.values(), key=lambda d: d.queued.seq):
            delivery.queue.settled(acked=False)
            if delivery.queue.name in self.vhost.queues:
                delivery.queue.requeue(delivery.queued)
        self.unacked.clear()
        if self.reply_token is not None:
            self.connection.broker.reply_channels.pop(self.reply_token, None)
            self.reply_token = None

    def _owner(self) -> object:
        return self.connection

    # Exchanges

    def _exchange_declare(self, m: Exchange.Declare) -> None:
        self.vhost.declare_exchange(
            m.exchange, m.exchange_type, m.passive, m.durable, m.auto_delete, m.internal, m.arguments
        )
        self.reply(Exchange.DeclareOk(), m.nowait)

    def _exchange_delete(self, m: Exchange.Delete) -> None:
        self.vhost.delete_exchange(m.exchange, m.if_unused)
        self.reply(Exchange.DeleteOk(), m.nowait)

    def _exchange_bind(self, m: Exchange.Bind) -> None:
        self.vhost.bind(m.source, m.destination, m.routing_key, m.arguments, True, self._owner())
        self.reply(Exchange.BindOk(), m.nowait)

    def _exchange_unbind(self, m: Exchange.Unbind) -> None:
        self.vhost.unbind(m.source, m.destination, m.routing_key, m.arguments, True, self._owner())
        self.reply(Exchange.UnbindOk(), m.nowait)

    # Queues

    def _queue_declare(self, m: Queue.Declare) -> None:
        if m.queue == DIRECT_REPLY_TO:
            self.reply(Queue.DeclareOk(queue=m.queue, message_count=0, consumer_count=0), m.nowait)
            return
        queue = self.vhost.declare_queue(
            m.queue, m.passive, m.durable, m.exclusive, m.auto_delete, m.arguments, self._owner()
        )
        reply = unchecked(
            Queue.DeclareOk, queue=queue.name, message_count=queue.ready, consumer_count=len(queue.consumers)
        )
        self.reply(reply, m.nowait)

    def _queue_bind(self, m: Queue.Bind) -> None:
        self.vhost.bind(m.exchange, self._queue_name(m.queue), m.routing_key, m.arguments, False, self._owner())
        self.reply(Queue.BindOk(), m.nowait)

    def _queue_unbind(self, m: Queue.Unbind) -> None:
        self.vhost.unbind(m.exchange, self._queue_name(m.queue), m.routing_key, m.arguments, False, self._owner())
        self.reply(Queue.UnbindOk())

    def _queue_purge(self, m: Queue.Purge) -> None:
        count = self.vhost.queue(self._queue_name(m.queue), self._owner()).purge()
        self.reply(Queue.PurgeOk(message_count=count), m.nowait)

    def _queue_delete(self, m: Queue.Delete) -> None:
        queue = self.vhost.deletable_queue(self._queue_name(m.queue), m.if_unused, m.if_empty, self._owner())
        # delete-ok first, then the cancels of its consumers (this channel's too), in RabbitMQ's order
        self.reply(Queue.DeleteOk(message_count=0 if queue is None else queue.ready), m.nowait)
        if queue is not None:
            self.vhost.remove_queue(queue)

    def _queue_name(self, name: str) -> str:
        if not name:
            raise AmqpFault(404, "no previously declared queue")  # RabbitMQ's "last queue" shortcut: not kept
        return name

    # Consuming

    def _qos(self, m: Basic.Qos) -> None:
        if m.prefetch_size:
            raise AmqpFault(540, f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            self.global_prefetch = m.prefetch_count
        else:
            self.prefetch = m.prefetch_count
        self.reply(Basic.QosOk())
        self.resume()

    def _consume(self, m: Basic.Consume) -> None:
        tag = m.consumer_tag or server_name("amq.ctag-")
        if tag in self.consumers:
            raise AmqpFault(530, f"attempt to reuse consumer tag '{tag}'")
        if m.queue == DIRECT_REPLY_TO:
            self._consume_replies(m, tag)
            return
        if m.arguments and "x-priority" in m.arguments:
            raise limit("consumer priorities (x-priority)", code=406)
        queue = self.vhost.queue(self._queue_name(m.queue), self._owner())
        if queue.consumers and (m.exclusive or any(c.exclusive for c in queue.consumers)):
            raise AmqpFault(403, f"queue '{queue.name}' in vhost '{self.vhost.name}' in exclusive use")
        consumer = ChannelConsumer(self, queue, tag, m.no_ack, self.prefetch, m.exclusive)
        self.consumers[tag] = consumer
        self.reply(unchecked(Basic.ConsumeOk, consumer_tag=tag), m.nowait)
        queue.add_consumer(consumer)

    def _consume_replies(self, m: Basic.Consume, tag: str) -> None:
        if not m.no_ack:
            raise AmqpFault(406, "reply consumer cannot acknowledge")
        if self.reply_token is not None:
            raise AmqpFault(406, "reply consumer already set")
        self.reply_token = server_name("")
        self.reply_consumer = tag
        self.connection.broker.reply_channels[self.reply_token] = self
        self.reply(unchecked(Basic.ConsumeOk, consumer_tag=tag), m.nowait)

    def _cancel(self, m: Basic.Cancel) -> None:
        if m.consumer_tag == self.reply_consumer and self.reply_token is not None:
            self.connection.broker.reply_channels.pop(self.reply_token, None)
            self.reply_token = self.reply_consumer = None
        consumer = self.consumers.get(m.consumer_tag or "")
        if consumer is not None:
            self._remove_consumer(consumer)
        self.reply(unchecked(Basic.CancelOk, consumer_tag=m.consumer_tag), m.nowait)

    def _remove_consumer(self, consumer: ChannelConsumer) -> None:
        self.consumers.pop(consumer.tag, None)
        consumer.queue.remove_consumer(consumer)
        self.vhost.consumer_gone(consumer.queue)

    def consumer_cancelled_by_broker(self, consumer: ChannelConsumer) -> None:
        """Its queue was deleted: basic.cancel to the client (consumer_cancel_notify)."""
        self.consumers.pop(consumer.tag, None)
        if not self.closing and self.connection.cancel_notify:  # only to clients that said they understand it
            cancel = unchecked(Basic.Cancel, consumer_tag=consumer.tag, nowait=True)
            self.connection.send_method(self.number, cancel)

    def has_room(self, consumer: ChannelConsumer) -> bool:
        if self.closing or self.connection.paused:
            return False
        if consumer.no_ack:
            return True
        if consumer.prefetch and consumer.unacked >= consumer.prefetch:
            return False
        return not (self.global_prefetch and len(self.unacked) >= self.global_prefetch)

    def resume(self) -> None:
        """Room again (acks, a bigger prefetch, a drained socket): the queues may deliver."""
        for consumer in self.consumers.values():
            consumer.queue.schedule_dispatch()

    def next_tag(self) -> int:
        self._next_tag += 1
        return self._next_tag

    def deliver(self, consumer: ChannelConsumer, queue: BrokerQueue, queued: Queued) -> None:
        tag = self.next_tag()
        if not consumer.no_ack:
            consumer.unacked += 1
            self.unacked[tag] = Delivery(consumer, queue, queued)
        message = queued.message
        self.stats["deliver"] += 1
        if queued.redelivered:
            self.stats["redeliver"] += 1
        method = deliver_frame(
            self.number, consumer.tag, tag, queued.redelivered, message.exchange, message.routing_key
        )
        self.send_content(method, message)

    def send_content(self, method: Method | bytes, message: Message) -> None:
        connection = self.connection
        head = method if isinstance(method, bytes) else encode_method(self.number, method)
        connection.send(head + content(self.number, message.header, message.body, connection.frame_max))

    def _get(self, m: Basic.Get) -> None:
        queue = self.vhost.queue(self._queue_name(m.queue), self._owner())
        queue.last_used = time.monotonic()
        queued = queue.take()
        if queued is None:
            self.reply(Basic.GetEmpty())
            return
        tag = self.next_tag()
        queue.stats["get"] += 1
        if not m.no_ack:
            queue.unacked += 1
            self.unacked[tag] = Delivery(None, queue, queued)
        message = queued.message
        reply = unchecked(
            Basic.GetOk,
            delivery_tag=tag,
            redelivered=queued.redelivered,
            exchange=message.exchange,
            routing_key=message.routing_key,
            message_count=queue.ready,
        )
        self.send_content(reply, message)

    # Acknowledgements

    def _settle(self, tag: int, multiple: bool, outcome: Callable[[Delivery], None]) -> None:
        if multiple:
            tags = [t for t in self.unacked if tag == 0 or t <= tag]
        elif tag in self.unacked:
            tags = [tag]
        else:
            tags = []
        if not tags and not (multiple and tag == 0):
            raise AmqpFault(406, f"unknown delivery tag {tag}")

        def apply() -> None:
            # In a transaction this runs at commit; a rollback leaves the deliveries unacked.
            for delivery in [self.unacked.pop(t) for t in tags if t in self.unacked]:
                if delivery.consumer is not None:
                    delivery.consumer.unacked -= 1
                outcome(delivery)
            self.resume()

        self.publishing.settle(apply)

    def _ack(self, m: Basic.Ack) -> None:
        def acked(delivery: Delivery) -> None:
            self.stats["ack"] += 1
            delivery.queue.settled(acked=True)

        self._settle(m.delivery_tag, m.multiple, acked)

    def _nack(self, m: Basic.Nack) -> None:
        self._settle(m.delivery_tag, m.multiple, self._rejected(m.requeue))

    def _reject(self, m: Basic.Reject) -> None:
        self._settle(m.delivery_tag or 0, False, self._rejected(m.requeue))

    def _rejected(self, requeue: bool) -> Callable[[Delivery], None]:
        def rejected(delivery: Delivery) -> None:
            delivery.queue.settled(acked=False)
            if requeue:
                delivery.queue.requeue(delivery.queued)
            else:
                self.vhost.dead_letter(delivery.queue, delivery.queued, "rejected")

        return rejected

    def _recover(self, m: Basic.Recover | Basic.RecoverAsync) -> None:
        """basic.recover, and the deprecated basic.recover-async, which RabbitMQ still takes (without a reply)."""
        if not m.requeue:
            raise AmqpFault(540, "requeue=false")
        for delivery in sorted(self.unacked.values(), key=lambda d: d.queued.seq):
            if delivery.consumer is not None:
                delivery.consumer.unacked -= 1
            delivery.queue.settled(acked=False)
            delivery.queue.requeue(delivery.queued)
        self.unacked.clear()
        if isinstance(m, Basic.Recover):
            self.reply(Basic.RecoverOk())
