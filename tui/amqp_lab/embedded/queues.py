"""A queue of the embedded broker: messages in order, consumers served round-robin within their prefetch,
TTL expiry at the head, length limits with RabbitMQ's overflow behaviours, dead-lettering handed to the vhost."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pamqp.commands import Basic

if TYPE_CHECKING:
    from amqp_lab.embedded.vhost import Vhost

_sequence = itertools.count()


@dataclass(slots=True)
class Message:
    """A published message. `header` is the content header payload as the publisher sent it."""

    exchange: str
    routing_key: str
    header: bytes
    body: bytes
    properties: Basic.Properties

    @property
    def headers(self) -> dict[str, Any]:
        return self.properties.headers or {}


@dataclass(slots=True)
class Queued:
    """One message in one queue: its place (for requeueing where RabbitMQ puts it back) and its expiry."""

    message: Message
    seq: int
    expires_at: float | None  # monotonic seconds
    redelivered: bool = False

    def __lt__(self, other: Queued) -> bool:
        return self.seq < other.seq


class Consumer(Protocol):
    """A consumer as the queue sees it; the channel behind it does the delivering."""

    tag: str
    no_ack: bool
    exclusive: bool

    def has_room(self) -> bool: ...

    def deliver(self, queue: Queue, queued: Queued) -> None: ...

    def queue_deleted(self) -> None: ...


class Queue:
    def __init__(
        self,
        vhost: Vhost,
        name: str,
        durable: bool,
        exclusive_owner: object | None,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments
        self._ready: deque[Queued] = deque()
        self._requeued: list[Queued] = []  # a heap by original order: requeued messages go back to their place
        self.ready_bytes = 0
        self.consumers: list[Consumer] = []
        self._turn = 0
        self.unacked = 0
        self.had_consumers = False
        self.last_used = time.monotonic()
        self._dispatch_pending = False
        self.stats: dict[str, int] = dict.fromkeys(("publish", "deliver", "ack", "redeliver", "get"), 0)
        self.ttl: float | None = _ms(arguments.get("x-message-ttl"))
        self.expires: float | None = _ms(arguments.get("x-expires"))
        self.max_length: int | None = arguments.get("x-max-length")
        self.max_length_bytes: int | None = arguments.get("x-max-length-bytes")
        self.overflow = str(arguments.get("x-overflow", "drop-head"))  # or reject-publish(-dlx)
        self.dead_letter_exchange: str | None = arguments.get("x-dead-letter-exchange")
        self.dead_letter_routing_key: str | None = arguments.get("x-dead-letter-routing-key")

    @property
    def ready(self) -> int:
        return len(self._ready) + len(self._requeued)

    @property
    def held(self) -> tuple[int, int]:
        """Body bytes of its ready messages, and how many they are (for the memory alarm)."""
        return self.ready_bytes, self.ready

    # In

    def enqueue(self, message: Message) -> bool:
        """False when the queue is full and refuses (reject-publish): the publisher gets a nack."""
        if self._full(len(message.body)):
            if self.overflow == "drop-head":
                while self.ready and self._full(len(message.body)):
                    head = self._pop()
                    if head is None:
                        break
                    self.vhost.dead_letter(self, head, "maxlen")
            else:
                if self.overflow == "reject-publish-dlx":
                    self.vhost.dead_letter(self, Queued(message, next(_sequence), None), "maxlen")
                return False
            if self._full(len(message.body)):  # x-max-length 0, or a message bigger than the byte limit
                self.vhost.dead_letter(self, Queued(message, next(_sequence), None), "maxlen")
                return True
        arrived = time.monotonic()
        expires_at = self._expiry(message, arrived)
        if expires_at is not None:
            self.vhost.expiring.add(self)
        self._ready.append(Queued(message, next(_sequence), expires_at))
        self.ready_bytes += len(message.body)
        self.stats["publish"] += 1
        if self.ttl == 0 or message.properties.expiration == "0":
            self.dispatch(arrived)  # delivered now to a consumer with room, as it arrives; otherwise expired
            self.expire(time.monotonic())
        else:
            self.schedule_dispatch()
        return True

    def _full(self, incoming: int) -> bool:
        if self.max_length is not None and self.ready + 1 > self.max_length:
            return True
        return self.max_length_bytes is not None and self.ready_bytes + incoming > self.max_length_bytes

    def _expiry(self, message: Message, arrived: float) -> float | None:
        ttl = self.ttl
        expiration = message.properties.expiration
        if expiration is not None:
            try:
                per_message = int(expiration) / 1000
            except ValueError:
                per_message = None
            if per_message is not None and (ttl is None or per_message < ttl):
                ttl = per_message  # the lower of the queue's and the message's TTL wins
        return None if ttl is None else arrived + ttl

    # Out

    def _pop(self) -> Queued | None:
        if self._requeued and (not self._ready or self._requeued[0].seq < self._ready[0].seq):
            queued = heapq.heappop(self._requeued)
        elif self._ready:
            queued = self._ready.popleft()
        else:
            return None
        self.ready_bytes -= len(queued.message.body)
        return queued

    def _peek(self) -> Queued | None:
        if self._requeued and (not self._ready or self._requeued[0].seq < self._ready[0].seq):
            return self._requeued[0]
        return self._ready[0] if self._ready else None

    def take(self, now: float | None = None) -> Queued | None:
        """The next live message at `now` (expired ones at the head are dead-lettered on the way)."""
        self.expire(time.monotonic() if now is None else now)
        return self._pop()

    def expire(self, now: float) -> None:
        """RabbitMQ expires messages when they reach the head; one of TTL 0 lives only the moment it arrives."""
        while (head := self._peek()) is not None and head.expires_at is not None and head.expires_at < now:
            self._pop()
            self.vhost.dead_letter(self, head, "expired")

    def requeue(self, queued: Queued) -> None:
        queued.redelivered = True
        heapq.heappush(self._requeued, queued)
        self.ready_bytes += len(queued.message.body)
        self.schedule_dispatch()

    def purge(self) -> int:
        count = self.ready
        self._ready.clear()
        self._requeued.clear()
        self.ready_bytes = 0
        return count

    # Consumers

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.had_consumers = True
        self.last_used = time.monotonic()
        self.schedule_dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        self.last_used = time.monotonic()

    def schedule_dispatch(self) -> None:
        # Once per loop iteration, however many messages arrived in it.
        if not self._dispatch_pending and self.consumers:
            self._dispatch_pending = True
            self.vhost.dispatching.add(self)  # at the end of the batch of input at hand, if there is one
            asyncio.get_running_loop().call_soon(self.dispatch)

    def dispatch(self, now: float | None = None) -> None:
        """Round-robin over the consumers that have room in their prefetch, while messages are ready (live at
        `now`: by default, the present)."""
        self._dispatch_pending = False
        self.vhost.dispatching.discard(self)
        consumers = self.consumers
        while consumers and self.ready:
            for _ in range(len(consumers)):
                self._turn = (self._turn + 1) % len(consumers)
                consumer = consumers[self._turn]
                if consumer.has_room():
                    break
            else:
                return
            queued = self.take(now)
            if queued is None:
                return
            self.stats["deliver"] += 1
            if queued.redelivered:
                self.stats["redeliver"] += 1
            if not consumer.no_ack:
                self.unacked += 1
            consumer.deliver(self, queued)

    def settled(self, acked: bool) -> None:
        """A delivery of this queue was acked, rejected or requeued."""
        self.unacked -= 1
        if acked:
            self.stats["ack"] += 1
        self.schedule_dispatch()

    def unused_for(self, now: float) -> float:
        return 0.0 if self.consumers else now - self.last_used


def _ms(value: Any) -> float | None:
    return None if value is None else int(value) / 1000
