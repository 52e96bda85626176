"""One virtual host of the embedded broker: exchanges, queues and bindings with RabbitMQ's rules and errors,
routing (the lab's own routing rules, the ones its tests hold against RabbitMQ) and dead-lettering."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from pamqp.commands import Basic

from amqp_lab.amqp import routing
from amqp_lab.amqp.model import Binding, Exchange, Topology
from amqp_lab.amqp.model import Queue as QueueModel
from amqp_lab.embedded.errors import AmqpFault, limit
from amqp_lab.embedded.queues import Message, Queue, Queued
from amqp_lab.embedded.wire import encode_header_payload

EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
PREDECLARED = (
    Exchange("", "direct"),
    Exchange("amq.direct", "direct"),
    Exchange("amq.fanout", "fanout"),
    Exchange("amq.topic", "topic"),
    Exchange("amq.headers", "headers"),
    Exchange("amq.match", "headers"),
)
DEFAULT_ALIAS = "amq.default"
OVERFLOWS = ("drop-head", "reject-publish", "reject-publish-dlx")
UNSUPPORTED_ARGUMENTS = {
    "x-max-priority": "priority queues (x-max-priority)",
    "x-single-active-consumer": "single active consumer (x-single-active-consumer)",
    "x-dead-letter-strategy": "at-least-once dead-lettering (x-dead-letter-strategy)",
    "x-stream-max-segment-size-bytes": "streams",
    "x-max-age": "streams (x-max-age)",
    "x-quorum-initial-group-size": "quorum queues of more than one member",
    "x-delivery-limit": "delivery limits of quorum queues (x-delivery-limit)",
}

log = logging.getLogger(__name__)


def server_name(prefix: str) -> str:
    """A name as RabbitMQ makes them: amq.gen-... for queues, amq.ctag-... for consumers."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


class Vhost:
    def __init__(self, name: str) -> None:
        self.name = name
        self.exchanges: dict[str, Exchange] = {e.name: e for e in PREDECLARED}
        self.queues: dict[str, Queue] = {}
        self.bindings: list[Binding] = []
        self.exchange_stats: dict[str, dict[str, int]] = {}
        self._routing: Topology | None = None
        self._routes: dict[tuple[str, str], frozenset[str]] = {}
        self._cacheable = False
        self.expiring: set[Queue] = set()  # queues with a message TTL or x-expires: checked by the tick
        self.dispatching: set[Queue] = set()  # queues with messages for consumers that have room

    def dispatch_now(self) -> None:
        """Deliveries before the confirms of a batch of input, as RabbitMQ orders them: a consumer on the
        publishing channel gets basic.deliver before the basic.ack of its publish (clients' tests rely on it)."""
        while self.dispatching:
            self.dispatching.pop().dispatch()

    def _changed(self) -> None:
        self._routing = None
        self._routes.clear()

    def _where(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.name}'"

    # Exchanges

    def exchange(self, name: str) -> Exchange:
        found = self.exchanges.get("" if name == DEFAULT_ALIAS else name)
        if found is None:
            raise AmqpFault(404, f"no {self._where('exchange', name)}")
        return found

    def declare_exchange(
        self, name: str, kind: str, passive: bool, durable: bool, auto_delete: bool, internal: bool, arguments: Any
    ) -> None:
        if name == "":
            raise AmqpFault(403, f"operation not permitted on the default {self._where('exchange', '')}")
        if passive:
            self.exchange(name)
            return
        if name.startswith("amq."):
            raise AmqpFault(403, f"exchange name '{name}' contains reserved prefix 'amq.*'")
        if kind not in EXCHANGE_TYPES:
            if kind.startswith("x-"):
                raise limit(f"exchange type '{kind}' (a plugin's)", code=406)
            raise AmqpFault(503, f"invalid exchange type '{kind}'")
        wanted = Exchange(name, kind, durable, auto_delete, internal, dict(arguments or {}))  # type: ignore[arg-type]
        existing = self.exchanges.get(name)
        if existing is None:
            self.exchanges[name] = wanted
            self._changed()
            return
        for field_name in ("type", "durable", "auto_delete", "internal", "arguments"):
            if getattr(existing, field_name) != getattr(wanted, field_name):
                raise AmqpFault(
                    406,
                    f"inequivalent arg '{field_name}' for {self._where('exchange', name)}: "
                    f"received '{_shown(getattr(wanted, field_name))}' but current is "
                    f"'{_shown(getattr(existing, field_name))}'",
                )

    def delete_exchange(self, name: str, if_unused: bool) -> None:
        if name == "" or name.startswith("amq."):
            raise AmqpFault(403, f"operation not permitted on the default exchange or {self._where('exchange', name)}")
        if name not in self.exchanges:
            return  # RabbitMQ: deleting what is not there succeeds
        if if_unused and any(b.source == name for b in self.bindings):
            raise AmqpFault(406, f"{self._where('exchange', name)} in use")
        del self.exchanges[name]
        self._unbind_where(lambda b: b.source == name or (b.to_exchange and b.destination == name))

    # Queues

    def queue(self, name: str, owner: object) -> Queue:
        found = self.queues.get(name)
        if found is None:
            raise AmqpFault(404, f"no {self._where('queue', name)}")
        if found.exclusive_owner is not None and found.exclusive_owner is not owner:
            raise self._locked(name)
        return found

    def _locked(self, name: str) -> AmqpFault:
        return AmqpFault(
            405,
            f"cannot obtain exclusive access to locked {self._where('queue', name)}. It could be originally "
            "declared on another connection or the exclusive property value does not match that of the "
            "original declaration.",
        )

    def declare_queue(
        self,
        name: str,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: Mapping[str, Any],
        owner: object,
    ) -> Queue:
        if passive:
            found = self.queue(name, owner)
            found.last_used = time.monotonic()
            return found
        if not name:
            name = server_name("amq.gen-")
        elif name.startswith("amq."):
            raise AmqpFault(403, f"queue name '{name}' contains reserved prefix 'amq.*'")
        arguments = dict(arguments or {})
        self._check_arguments(name, arguments)
        if arguments.get("x-queue-type") == "quorum":
            # One node: a quorum queue of one member. RabbitMQ's rules for the type still hold.
            for refused, why in ((exclusive, "exclusive"), (not durable, "non-durable"), (auto_delete, "auto-delete")):
                if refused:
                    raise AmqpFault(406, f"invalid property '{why}' for {self._where('queue', name)}")
        existing = self.queues.get(name)
        if existing is not None:
            self.queue(name, owner)  # exclusive to another connection: 405
            if exclusive != (existing.exclusive_owner is not None):
                raise self._locked(name)  # RabbitMQ: the exclusive flag differs, on the owning connection too
            wanted = {"durable": durable, "exclusive": exclusive, "auto_delete": auto_delete}
            current = {
                "durable": existing.durable,
                "exclusive": existing.exclusive_owner is not None,
                "auto_delete": existing.auto_delete,
            }
            for key in (*wanted, *sorted(set(arguments) | set(existing.arguments))):
                received = wanted[key] if key in wanted else arguments.get(key)
                now = current[key] if key in current else existing.arguments.get(key)
                if received != now:
                    raise AmqpFault(
                        406,
                        f"inequivalent arg '{key}' for {self._where('queue', name)}: "
                        f"received '{_shown(received)}' but current is '{_shown(now)}'",
                    )
            existing.last_used = time.monotonic()
            return existing
        queue = Queue(self, name, durable, owner if exclusive else None, auto_delete, arguments)
        self.queues[name] = queue
        if queue.ttl is not None or queue.expires is not None:
            self.expiring.add(queue)
        self._changed()
        return queue

    def _check_arguments(self, name: str, arguments: dict[str, Any]) -> None:
        def invalid(key: str, why: str) -> AmqpFault:
            return AmqpFault(406, f"invalid arg '{key}' for {self._where('queue', name)}: {why}")

        for key in ("x-dead-letter-exchange", "x-dead-letter-routing-key", "x-overflow", "x-queue-type"):
            if key in arguments and not isinstance(arguments[key], str):
                raise invalid(key, f"{{unacceptable_type,{_amqp_type(arguments[key])}}}")
        kind = arguments.get("x-queue-type", "classic")
        if kind not in ("classic", "quorum"):
            raise limit(f"{kind} queues (x-queue-type)", code=406)
        for key, what in UNSUPPORTED_ARGUMENTS.items():
            if key in arguments and arguments[key] not in (False, None):
                raise limit(what, code=406)
        for key, least in (("x-message-ttl", 0), ("x-expires", 1), ("x-max-length", 0), ("x-max-length-bytes", 0)):
            if key in arguments:
                value = arguments[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise invalid(key, f"{{unacceptable_type,{_amqp_type(value)}}}")
                if value < least:
                    raise invalid(key, f"{{value_{'zero' if value == 0 else 'negative'},{value}}}")
        if "x-overflow" in arguments and arguments["x-overflow"] not in OVERFLOWS:
            raise invalid("x-overflow", f"{{unknown_overflow,{arguments['x-overflow']}}}")
        if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
            raise invalid("x-dead-letter-routing-key", '{missing_dependent_argument,<<"x-dead-letter-exchange">>}')

    def deletable_queue(self, name: str, if_unused: bool, if_empty: bool, owner: object) -> Queue | None:
        """The queue a queue.delete may remove (None: not there, which RabbitMQ answers delete-ok), or the fault."""
        if name not in self.queues:
            return None
        queue = self.queue(name, owner)
        if queue.arguments.get("x-queue-type") == "quorum" and (if_unused or if_empty):
            flag = "if-unused" if if_unused else "if-empty"
            raise AmqpFault(
                540,
                f"cannot delete {self._where('queue', name)}. "
                f"queue.delete operations with {flag} flag set are not supported by quorum queues",
            )
        if if_unused and queue.consumers:
            raise AmqpFault(406, f"{self._where('queue', name)} in use")
        if if_empty and queue.ready:
            raise AmqpFault(406, f"{self._where('queue', name)} not empty")
        return queue

    def remove_queue(self, queue: Queue) -> int:
        """Gone: consumers are told (basic.cancel), what it held is dropped."""
        count = queue.ready
        self.queues.pop(queue.name, None)
        self.expiring.discard(queue)
        self._unbind_where(lambda b: not b.to_exchange and b.destination == queue.name)
        for consumer in list(queue.consumers):
            consumer.queue_deleted()
        queue.consumers.clear()
        queue.purge()
        self._changed()
        return count

    def connection_closed(self, owner: object) -> None:
        """Exclusive queues go with the connection that declared them."""
        for queue in [q for q in self.queues.values() if q.exclusive_owner is owner]:
            self.remove_queue(queue)

    def consumer_gone(self, queue: Queue) -> None:
        """An auto-delete queue goes when its last consumer does."""
        if queue.auto_delete and queue.had_consumers and not queue.consumers and queue.name in self.queues:
            self.remove_queue(queue)

    # Bindings

    def bind(self, source: str, destination: str, key: str, arguments: Any, to_exchange: bool, owner: object) -> None:
        self._check_binding(source, destination, to_exchange, owner)
        if self.exchange(source).type == "headers" and "x-match" in (arguments or {}):
            _check_match(arguments["x-match"])
        binding = Binding(source, destination, key, dict(arguments or {}), to_exchange)
        if binding not in self.bindings:
            self.bindings.append(binding)
            self._changed()

    def unbind(self, source: str, destination: str, key: str, arguments: Any, to_exchange: bool, owner: object) -> None:
        """Idempotent, as RabbitMQ's: a binding whose exchange or queue is gone already is unbound (aio-pika's
        RPC.close() unbinds from an auto-delete exchange that went with its queue)."""
        if source in ("", DEFAULT_ALIAS) or (to_exchange and destination in ("", DEFAULT_ALIAS)):
            raise AmqpFault(403, f"operation not permitted on the default {self._where('exchange', '')}")
        if not to_exchange and destination in self.queues:
            self.queue(destination, owner)  # another connection's exclusive queue stays locked
        binding = Binding(source, destination, key, dict(arguments or {}), to_exchange)
        self._unbind_where(lambda b: b == binding)

    def _unbind_where(self, gone: Callable[[Binding], bool]) -> None:
        """Remove bindings; an auto-delete exchange that was their source goes with its last one."""
        removed = [b for b in self.bindings if gone(b)]
        if not removed:
            return
        self.bindings = [b for b in self.bindings if not gone(b)]
        self._changed()
        for source in {b.source for b in removed}:
            found = self.exchanges.get(source)
            if found is not None and found.auto_delete and not any(b.source == source for b in self.bindings):
                del self.exchanges[source]
                self._unbind_where(_bound_to_exchange(source))

    def _check_binding(self, source: str, destination: str, to_exchange: bool, owner: object) -> None:
        if source in ("", DEFAULT_ALIAS) or (to_exchange and destination in ("", DEFAULT_ALIAS)):
            raise AmqpFault(403, f"operation not permitted on the default {self._where('exchange', '')}")
        self.exchange(source)
        if to_exchange:
            self.exchange(destination)
        else:
            self.queue(destination, owner)

    # Routing

    def route(self, exchange: str, key: str, headers: Mapping[str, Any]) -> list[Queue]:
        if exchange in ("", DEFAULT_ALIAS):
            found = self.queues.get(key)
            return [] if found is None else [found]
        if self._routing is None:
            self._routing = Topology(
                tuple(self.exchanges.values()), tuple(QueueModel(n) for n in self.queues), tuple(self.bindings)
            )
            # Routes are remembered per (exchange, key) unless headers decide somewhere: a bound headers exchange.
            sources = {b.source for b in self.bindings}
            self._cacheable = not any(e.type == "headers" and e.name in sources for e in self.exchanges.values())
        names = self._routes.get((exchange, key)) if self._cacheable else None
        if names is None:
            names = routing.route(self._routing, exchange, key, headers)
            if self._cacheable:
                self._routes[(exchange, key)] = names
        return [self.queues[n] for n in names if n in self.queues]

    def count_publish(self, exchange: str, copies: int) -> None:
        """One message in; out, one per queue it reached, as RabbitMQ counts publish_out (a fanout to 3 is 3)."""
        stats = self.exchange_stats.setdefault(exchange, {"publish_in": 0, "publish_out": 0})
        stats["publish_in"] += 1
        stats["publish_out"] += copies

    # Dead-lettering and expiry

    def dead_letter(self, queue: Queue, queued: Queued, reason: str) -> None:
        """To the queue's dead-letter exchange with x-death, as RabbitMQ 4 records it; dropped without one."""
        exchange = queue.dead_letter_exchange
        if exchange is None or exchange not in self.exchanges:
            return
        message = queued.message
        properties = Basic.Properties(**{k: getattr(message.properties, k) for k in message.properties.__slots__})
        headers: dict[str, Any] = dict(properties.headers or {})
        listed = headers.get("x-death")
        deaths = [dict(d) for d in listed if isinstance(d, Mapping)] if isinstance(listed, list) else []
        now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
        entry = next((d for d in deaths if d.get("queue") == queue.name and d.get("reason") == reason), None)
        if entry is not None:
            deaths.remove(entry)
            count = entry.get("count")  # a client may have put anything there
            entry["count"] = (count if isinstance(count, int) and not isinstance(count, bool) else 0) + 1
            entry["time"] = now
        else:
            entry = {
                "count": 1,
                "reason": reason,
                "queue": queue.name,
                "time": now,
                "exchange": message.exchange,
                "routing-keys": [message.routing_key],
            }
            if reason == "expired" and properties.expiration is not None:
                entry["original-expiration"] = properties.expiration
        deaths = [entry, *deaths]
        headers["x-death"] = deaths
        for side in ("first", "last"):
            if side == "last" or "x-first-death-reason" not in headers:
                headers[f"x-{side}-death-reason"] = reason
                headers[f"x-{side}-death-queue"] = queue.name
                headers[f"x-{side}-death-exchange"] = message.exchange
        properties.headers = headers
        properties.expiration = None
        key = queue.dead_letter_routing_key or message.routing_key
        letter = Message(exchange, key, encode_header_payload(len(message.body), properties), message.body, properties)
        for target in self.route(exchange, key, headers):
            if not _cycles(reason, deaths, target.name):
                target.enqueue(letter)

    def tick(self, now: float) -> None:
        """Expire messages at the heads of queues with a TTL, and queues unused for their x-expires. A queue whose
        expiry fails (whatever a client put in a message) is logged and skipped: the others keep expiring."""
        for queue in list(self.expiring):
            try:
                queue.expire(now)
                if queue.expires is not None and queue.unused_for(now) >= queue.expires and queue.name in self.queues:
                    self.remove_queue(queue)
            except Exception:
                log.exception("expiring %s failed; it is skipped this time", self._where("queue", queue.name))


X_MATCH = ("all", "any", "all-with-x", "any-with-x")


def _check_match(mode: Any) -> None:
    """A headers binding's x-match, refused as RabbitMQ refuses it at bind time."""
    if not isinstance(mode, str):
        raise AmqpFault(406, f"Invalid x-match field type {_amqp_type(mode)} (value {mode!r}); expected longstr")
    if mode not in X_MATCH:
        raise AmqpFault(406, f'Invalid x-match field value <<"{mode}">>; expected all, any, all-with-x, or any-with-x')


def _bound_to_exchange(name: str) -> Callable[[Binding], bool]:
    return lambda b: b.to_exchange and b.destination == name


def _cycles(reason: str, deaths: list[dict[str, Any]], target: str) -> bool:
    """RabbitMQ drops a dead-lettered message that would reach a queue it has been dead-lettered from already,
    unless it was rejected somewhere on the way: a cycle with no consumer to break it (TTL 0 back to itself)."""
    if reason == "rejected":
        return False
    for death in deaths:  # newest first
        if death.get("reason") == "rejected":
            return False
        if death.get("queue") == target:
            return True
    return False


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def _amqp_type(value: Any) -> str:
    """A field's type as RabbitMQ names it in its refusals."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str | bytes):
        return "longstr"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    return "void" if value is None else type(value).__name__
