"""The subset of RabbitMQ's management HTTP API that amqp-lab uses, with RabbitMQ's field names.

HTTP/1.1 is h11's (already here with httpx); this module maps paths to the broker's state. Rates are
counter differences between samples taken every second, as `message_stats.*_details.rate`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import struct
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import re2
from pamqp.commands import Basic

from amqp_lab import __version__
from amqp_lab.embedded.errors import AmqpFault
from amqp_lab.embedded.queues import Message
from amqp_lab.embedded.queues import Queue as BrokerQueue
from amqp_lab.embedded.vhost import DEFAULT_ALIAS, Vhost
from amqp_lab.embedded.wire import encode_header_payload

if TYPE_CHECKING:
    from amqp_lab.embedded.channel import Channel
    from amqp_lab.embedded.connection import Connection
    from amqp_lab.embedded.server import Broker

SAMPLE_EVERY = 1.0
MAX_BODY = 1 << 20
PRODUCT = "amqp-lab embedded broker"

log = logging.getLogger(__name__)


class HttpError(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def _not_found() -> HttpError:
    return HttpError(404, "Object Not Found", "Not Found")


class Rates:
    """Counters sampled every second; a rate is the change between the last two samples."""

    def __init__(self) -> None:
        self._previous: dict[object, tuple[float, dict[str, int]]] = {}
        self._rates: dict[object, dict[str, float]] = {}

    def sample(self, key: object, counters: dict[str, int], now: float) -> None:
        before = self._previous.get(key)
        if before is not None and now > before[0]:
            span = now - before[0]
            self._rates[key] = {k: max(0.0, (v - before[1].get(k, 0)) / span) for k, v in counters.items()}
        self._previous[key] = (now, dict(counters))

    def stats(self, key: object, counters: dict[str, int]) -> dict[str, Any]:
        rates = self._rates.get(key, {})
        stats: dict[str, Any] = {}
        for name, value in counters.items():
            stats[name] = value
            stats[f"{name}_details"] = {"rate": round(rates.get(name, 0.0), 1)}
        return stats

    def forget(self, alive: set[object]) -> None:
        for key in [k for k in self._previous if k not in alive]:
            self._previous.pop(key, None)
            self._rates.pop(key, None)


def queue_counters(queue: BrokerQueue) -> dict[str, int]:
    s = queue.stats
    return {
        "publish": s["publish"],
        "deliver_get": s["deliver"] + s["get"],
        "ack": s["ack"],
        "redeliver": s["redeliver"],
    }


def channel_counters(channel: Channel) -> dict[str, int]:
    s = channel.stats
    return {
        "publish": s["publish"],
        "deliver_get": s["deliver"],
        "ack": s["ack"],
        "confirm": s["confirm"],
        "redeliver": s["redeliver"],
    }


def pick(document: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """Only the given (dotted) fields, nested as in the document, as RabbitMQ's columns= does."""
    picked: dict[str, Any] = {}
    for column in columns:
        parts = column.split(".")
        value: Any = document
        for part in parts:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None and not (len(parts) == 1 and parts[0] in document):
            continue
        target = picked
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return picked


def _field(document: dict[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class ManagementApi:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.rates = Rates()
        self._sampler: asyncio.Task[None] | None = None

    def protocol(self) -> HttpConnection:
        if self._sampler is None:
            self._sampler = asyncio.get_running_loop().create_task(self._sampling())
        return HttpConnection(self)

    async def _sampling(self) -> None:
        while True:
            self.sample(time.monotonic())
            await asyncio.sleep(SAMPLE_EVERY)

    def sample(self, now: float) -> None:
        alive: set[object] = {"overview"}
        rates = self.rates
        for vhost in self.broker.vhosts.values():
            for queue in vhost.queues.values():
                alive.add(queue)
                rates.sample(queue, queue_counters(queue), now)
            for name, counters in vhost.exchange_stats.items():
                alive.add((vhost.name, name))
                rates.sample((vhost.name, name), counters, now)
        for connection in self.broker.connections:
            for channel in connection.channels.values():
                alive.add(channel)
                rates.sample(channel, channel_counters(channel), now)
        rates.sample("overview", self._overview_counters(), now)
        rates.forget(alive)

    # Routing of requests

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if not self._authorised(headers.get("authorization", "")):
            raise HttpError(401, "not_authorised", "Login failed")
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if not parts or parts[0] != "api":
            raise _not_found()
        parts = parts[1:]
        route = (method, parts[0] if parts else "", len(parts))
        data = self._dispatch(route, parts, query, body)
        if method == "GET" and "columns" in query:
            columns = query["columns"].split(",")
            if isinstance(data, list):
                data = [pick(d, columns) for d in data]
            elif isinstance(data, dict) and "items" in data:
                data = {**data, "items": [pick(d, columns) for d in data["items"]]}
            elif isinstance(data, dict):
                data = pick(data, columns)
        return (204, None) if method == "DELETE" else (200, data)

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.broker.authenticate(user, password)

    def _dispatch(self, route: tuple[str, str, int], parts: list[str], query: dict[str, str], body: bytes) -> Any:
        method, kind, depth = route
        if method == "GET":
            if kind == "overview":
                return self.overview()
            if kind == "nodes" and depth == 1:
                return [self.node_document()]
            if kind == "whoami":
                return {"name": self.broker.options.user, "tags": ["administrator"]}
            if kind == "vhosts" and depth == 1:
                return [self.vhost_document(v) for v in self.broker.vhosts.values()]
            if kind == "queues":
                return self._queues_get(parts, query)
            if kind == "exchanges":
                return self._exchanges_get(parts)
            if kind == "bindings" and depth <= 2:
                return [b for v in self._vhosts(parts[1:2]) for b in self.bindings(v)]
            if kind == "consumers" and depth <= 2:
                return [c for v in self._vhosts(parts[1:2]) for c in self.consumers(v)]
            if kind == "connections" and depth == 1:
                return [self.connection_document(c) for c in self.broker.connections if c.vhost is not None]
            if kind == "channels" and depth == 1:
                return [self.channel_document(ch) for ch in self._channels()]
            if kind == "channels" and depth == 2:
                found = next((ch for ch in self._channels() if self._channel_name(ch) == parts[1]), None)
                if found is None:
                    raise _not_found()
                return self.channel_document(found)
        if method == "POST" and kind == "queues" and depth == 4 and parts[3] == "get":
            return self.get_messages(self._queue(parts[1], parts[2]), self._json(body))
        if method == "POST" and kind == "exchanges" and depth == 4 and parts[3] == "publish":
            return self.publish(self._vhost(parts[1]), parts[2], self._json(body))
        if method == "DELETE" and kind == "queues" and depth in (3, 4):
            queue = self._queue(parts[1], parts[2])
            if depth == 4 and parts[3] == "contents":
                queue.purge()
            elif depth == 3:
                queue.vhost.remove_queue(queue)
            else:
                raise _not_found()
            return None
        if method == "DELETE" and kind == "exchanges" and depth == 3:
            vhost = self._vhost(parts[1])
            name = "" if parts[2] == DEFAULT_ALIAS else parts[2]
            if name not in vhost.exchanges:
                raise _not_found()
            try:
                vhost.delete_exchange(name, if_unused=False)
            except AmqpFault as fault:
                raise HttpError(403, "access_refused", fault.text) from None
            return None
        raise HttpError(405 if kind else 404, "Method Not Allowed", f"{method} {'/'.join(parts)}")

    def _json(self, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise HttpError(400, "bad_request", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "bad_request", "the body must be a JSON object")
        return data

    def _vhost(self, name: str) -> Vhost:
        found = self.broker.vhosts.get(name)
        if found is None:
            raise _not_found()
        return found

    def _vhosts(self, names: list[str]) -> Iterable[Vhost]:
        return [self._vhost(names[0])] if names else list(self.broker.vhosts.values())

    def _queue(self, vhost: str, name: str) -> BrokerQueue:
        found = self._vhost(vhost).queues.get(name)
        if found is None:
            raise _not_found()
        return found

    def _channels(self) -> list[Channel]:
        return [ch for c in self.broker.connections for ch in c.channels.values()]

    # Documents

    def _overview_counters(self) -> dict[str, int]:
        totals = dict.fromkeys(("publish", "deliver_get", "ack", "confirm", "redeliver"), 0)
        for connection in self.broker.connections:
            for channel in connection.channels.values():
                for key, value in channel_counters(channel).items():
                    totals[key] += value
        return totals

    def overview(self) -> dict[str, Any]:
        queues = [q for v in self.broker.vhosts.values() for q in v.queues.values()]
        ready = sum(q.ready for q in queues)
        unacked = sum(q.unacked for q in queues)
        return {
            "management_version": __version__,
            "rates_mode": "basic",
            "product_name": PRODUCT,
            "product_version": __version__,
            "rabbitmq_version": __version__,
            "erlang_version": "",  # none: Python runs it (the check says which broker, not which Erlang)
            "node": self.node,
            "cluster_name": self.broker.cluster_name,
            "default_queue_type": "classic",
            "statistics_db_event_queue": 0,
            "object_totals": {
                "connections": len(self.broker.connections),
                "channels": len(self._channels()),
                "exchanges": sum(len(v.exchanges) for v in self.broker.vhosts.values()),
                "queues": len(queues),
                "consumers": sum(len(q.consumers) for q in queues),
            },
            "queue_totals": {
                "messages": ready + unacked,
                "messages_ready": ready,
                "messages_unacknowledged": unacked,
            },
            "message_stats": self.rates.stats("overview", self._overview_counters()),
            "listeners": [
                {"protocol": "amqp", "port": self.broker.amqp_port, "ip_address": self.broker.options.bind},
                {"protocol": "http", "port": self.broker.management_port, "ip_address": self.broker.options.bind},
            ],
        }

    @property
    def node(self) -> str:
        return f"embedded@{self.broker.cluster_name.partition('@')[2]}"

    def node_document(self) -> dict[str, Any]:
        """Its one node, always running; a memory alarm as RabbitMQ's (over held messages), no disk to alarm on."""
        broker = self.broker
        return {"name": self.node, "type": "disc", "running": True, "mem_alarm": broker.memory_alarm,
                "mem_used": broker.memory_used, "mem_limit": broker.options.memory_limit, "disk_free_alarm": False,
                "partitions": []}  # fmt: skip

    def vhost_document(self, vhost: Vhost) -> dict[str, Any]:
        ready = sum(q.ready for q in vhost.queues.values())
        unacked = sum(q.unacked for q in vhost.queues.values())
        return {
            "name": vhost.name,
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
            "tracing": False,
        }

    def queue_document(self, queue: BrokerQueue) -> dict[str, Any]:
        kind = queue.arguments.get("x-queue-type", "classic")
        return {
            "name": queue.name,
            "vhost": queue.vhost.name,
            "type": kind,
            "state": "running",
            "node": self.node,
            **({"leader": self.node, "members": [self.node], "online": [self.node]} if kind == "quorum" else {}),
            "durable": queue.durable,
            "auto_delete": queue.auto_delete,
            "exclusive": queue.exclusive_owner is not None,
            "arguments": queue.arguments,
            "policy": None,
            "operator_policy": None,
            "effective_policy_definition": {},
            "messages": queue.ready + queue.unacked,
            "messages_ready": queue.ready,
            "messages_unacknowledged": queue.unacked,
            "message_bytes_ready": queue.ready_bytes,
            "consumers": len(queue.consumers),
            "message_stats": self.rates.stats(queue, queue_counters(queue)),
        }

    def _queues_get(self, parts: list[str], query: dict[str, str]) -> Any:
        if len(parts) == 3:
            queue = self._queue(parts[1], parts[2])
            document = self.queue_document(queue)
            document["consumer_details"] = [self.consumer_document(c) for c in queue.consumers]
            return document
        if len(parts) == 4 and parts[3] == "bindings":
            queue = self._queue(parts[1], parts[2])
            return [
                b
                for b in self.bindings(queue.vhost)
                if b["destination"] == queue.name and b["destination_type"] == "queue"
            ]
        if len(parts) > 2:
            raise _not_found()
        documents = [self.queue_document(q) for v in self._vhosts(parts[1:2]) for q in v.queues.values()]
        return self._page(documents, query)

    def _page(self, documents: list[dict[str, Any]], query: dict[str, str]) -> Any:
        total = len(documents)
        name = query.get("name")
        if name:
            if query.get("use_regex") == "true":
                pattern = _regex(name)
                documents = [d for d in documents if pattern.search(d["name"])]
            else:
                documents = [d for d in documents if name in d["name"]]
        sort = query.get("sort")
        if sort:
            key: Callable[[dict[str, Any]], Any] = lambda d: (_field(d, sort) is None, _field(d, sort) or 0)  # noqa: E731
            if sort == "name":
                key = lambda d: d["name"]  # noqa: E731
            documents.sort(key=key, reverse=query.get("sort_reverse") == "true")
        else:
            documents.sort(key=lambda d: (d["vhost"], d["name"]))
        if "page" not in query:
            return documents
        try:
            page, size = int(query["page"]), int(query.get("page_size", "100"))
        except ValueError:
            raise HttpError(400, "bad_request", "page and page_size must be numbers") from None
        if page < 1 or not 1 <= size <= 500:
            raise HttpError(400, "bad_request", "page must be at least 1, page_size from 1 to 500")
        filtered = len(documents)
        items = documents[(page - 1) * size : page * size]
        return {
            "items": items,
            "page": page,
            "page_size": size,
            "page_count": max(1, -(-filtered // size)),
            "item_count": len(items),
            "total_count": total,
            "filtered_count": filtered,
        }

    def exchange_document(self, vhost: Vhost, name: str) -> dict[str, Any]:
        exchange = vhost.exchanges[name]
        counters = vhost.exchange_stats.get(name, {"publish_in": 0, "publish_out": 0})
        return {
            "name": name,
            "vhost": vhost.name,
            "type": exchange.type,
            "durable": exchange.durable,
            "auto_delete": exchange.auto_delete,
            "internal": exchange.internal,
            "arguments": dict(exchange.arguments),
            "message_stats": self.rates.stats((vhost.name, name), counters),
        }

    def _exchanges_get(self, parts: list[str]) -> Any:
        if len(parts) <= 2:
            return [self.exchange_document(v, n) for v in self._vhosts(parts[1:2]) for n in v.exchanges]
        vhost = self._vhost(parts[1])
        name = "" if parts[2] == DEFAULT_ALIAS else parts[2]
        if name not in vhost.exchanges:
            raise _not_found()
        if len(parts) == 3:
            return self.exchange_document(vhost, name)
        if len(parts) == 5 and parts[3] == "bindings" and parts[4] in ("source", "destination"):
            side = "source" if parts[4] == "source" else "destination"
            return [
                b
                for b in self.bindings(vhost)
                if b[side] == name and (side == "source" or b["destination_type"] == "exchange")
            ]
        raise _not_found()

    def bindings(self, vhost: Vhost) -> list[dict[str, Any]]:
        """Every binding, the default exchange's implicit one to each queue first, as RabbitMQ lists them."""
        found = [
            {
                "source": "",
                "vhost": vhost.name,
                "destination": name,
                "destination_type": "queue",
                "routing_key": name,
                "arguments": {},
                "properties_key": name,
            }
            for name in vhost.queues
        ]
        for b in vhost.bindings:
            found.append(
                {
                    "source": b.source,
                    "vhost": vhost.name,
                    "destination": b.destination,
                    "destination_type": "exchange" if b.to_exchange else "queue",
                    "routing_key": b.routing_key,
                    "arguments": dict(b.arguments),
                    "properties_key": b.routing_key or "~",
                }
            )
        return found

    def _connection_name(self, connection: Connection) -> str:
        return f"{connection.peer_host}:{connection.peer_port} -> {self.broker.options.bind}:{self.broker.amqp_port}"

    def _channel_name(self, channel: Channel) -> str:
        return f"{self._connection_name(channel.connection)} ({channel.number})"

    def connection_document(self, connection: Connection) -> dict[str, Any]:
        return {
            "name": self._connection_name(connection),
            "vhost": connection.vhost.name if connection.vhost else "/",
            "user": connection.user,
            "peer_host": connection.peer_host,
            "peer_port": connection.peer_port,
            "state": "running",
            "channels": len(connection.channels),
            "protocol": "AMQP 0-9-1",
            "connected_at": int(connection.opened_at * 1000),
            "client_properties": {"connection_name": connection.name} if connection.name else {},
            **({"user_provided_name": connection.name} if connection.name else {}),  # as RabbitMQ lists it
            "recv_oct": connection.stats["recv_oct"],
            "send_oct": connection.stats["send_oct"],
        }

    def channel_document(self, channel: Channel) -> dict[str, Any]:
        connection = channel.connection
        return {
            "name": self._channel_name(channel),
            "number": channel.number,
            "vhost": channel.vhost.name,
            "user": connection.user,
            "connection_details": {
                "name": self._connection_name(connection),
                "peer_host": connection.peer_host,
                "peer_port": connection.peer_port,
            },
            "prefetch_count": channel.prefetch,
            "global_prefetch_count": channel.global_prefetch,
            "messages_unacknowledged": len(channel.unacked),
            "consumer_count": len(channel.consumers),
            "confirm": channel.confirming,
            "transactional": channel.transactional,
            "state": "running",
            "message_stats": self.rates.stats(channel, channel_counters(channel)),
        }

    def consumer_document(self, consumer: Any) -> dict[str, Any]:
        channel: Channel = consumer.channel
        connection = channel.connection
        return {
            "queue": {"name": consumer.queue.name, "vhost": channel.vhost.name},
            "channel_details": {
                "name": self._channel_name(channel),
                "number": channel.number,
                "connection_name": self._connection_name(connection),
                "peer_host": connection.peer_host,
                "peer_port": connection.peer_port,
                "user": connection.user,
            },
            "consumer_tag": consumer.tag,
            "prefetch_count": consumer.prefetch,
            "ack_required": not consumer.no_ack,
            "exclusive": consumer.exclusive,
            "active": True,
            "arguments": {},
        }

    def consumers(self, vhost: Vhost) -> list[dict[str, Any]]:
        return [self.consumer_document(c) for q in vhost.queues.values() for c in q.consumers]

    # Actions

    def get_messages(self, queue: BrokerQueue, request: dict[str, Any]) -> list[dict[str, Any]]:
        if queue.exclusive_owner is not None:
            raise HttpError(
                400,
                "bad_request",
                f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue.name}' in vhost "
                f"'{queue.vhost.name}'. It could be originally declared on another connection or the exclusive "
                "property value does not match that of the original declaration.",
            )
        count = request.get("count", 1)
        ackmode = request.get("ackmode", "ack_requeue_true")
        truncate = request.get("truncate")
        if not isinstance(count, int) or count < 1:
            raise HttpError(400, "bad_request", "count must be a positive number")
        if ackmode not in ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false"):
            raise HttpError(400, "bad_request", f"unknown ackmode {ackmode!r}")
        taken = []
        for _ in range(count):
            queued = queue.take()
            if queued is None:
                break
            queue.stats["get"] += 1
            taken.append(queued)
        documents = []
        for queued in taken:
            message = queued.message
            body = message.body
            if isinstance(truncate, int) and truncate >= 0:
                body = body[:truncate]
            try:
                payload, encoding = body.decode(), "string"
            except UnicodeDecodeError:
                payload, encoding = base64.b64encode(body).decode(), "base64"
            documents.append(
                {
                    "payload_bytes": len(message.body),
                    "redelivered": queued.redelivered,
                    "exchange": message.exchange,
                    "routing_key": message.routing_key,
                    "message_count": queue.ready,
                    "properties": _properties(message.properties),
                    "payload": payload,
                    "payload_encoding": encoding,
                }
            )
        for queued in reversed(taken):
            if ackmode.endswith("requeue_true"):
                queue.requeue(queued)
        return documents

    def publish(self, vhost: Vhost, name: str, request: dict[str, Any]) -> dict[str, bool]:
        exchange = "" if name == DEFAULT_ALIAS else name
        if exchange not in vhost.exchanges:
            raise _not_found()
        key = request.get("routing_key", "")
        payload = request.get("payload", "")
        if not isinstance(key, str) or not isinstance(payload, str):
            raise HttpError(400, "bad_request", "routing_key and payload must be strings")
        try:
            body = (
                base64.b64decode(payload, validate=True)
                if request.get("payload_encoding") == "base64"
                else payload.encode()
            )
        except binascii.Error:
            raise HttpError(400, "bad_request", "payload is not base64 (payload_encoding base64)") from None
        given = request.get("properties") or {}
        if not isinstance(given, dict):
            raise HttpError(400, "bad_request", "properties must be a JSON object")
        try:
            properties = Basic.Properties(**{k: v for k, v in given.items() if k in Basic.Properties.__slots__})
            header = encode_header_payload(len(body), properties)
        except (TypeError, ValueError, OverflowError, struct.error) as exc:  # pamqp's words for what AMQP cannot carry
            raise HttpError(400, "bad_request", f"invalid properties: {exc}") from None
        message = Message(exchange, key, header, body, properties)
        queues = vhost.route(exchange, key, message.headers)
        for queue in queues:
            queue.enqueue(message)
        vhost.count_publish(exchange, len(queues))
        return {"routed": bool(queues)}


def _properties(properties: Basic.Properties) -> dict[str, Any]:
    values = {name: getattr(properties, name) for name in properties.__slots__}
    return {name: _jsonable(value) for name, value in values.items() if value is not None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if hasattr(value, "isoformat"):
        return int(value.timestamp())
    return value


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 client: requests parsed by h11, answered in order."""

    def __init__(self, api: ManagementApi) -> None:
        self.api = api
        self.http = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self._request: h11.Request | None = None
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.http.receive_data(data)
            self._events()
        except h11.RemoteProtocolError:
            self._respond(400, {"error": "bad_request", "reason": "malformed HTTP"})
            self._close()

    def _events(self) -> None:
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
                    self.http.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self._request, self._body = event, []
            elif isinstance(event, h11.Data):
                self._body.append(event.data)
                if sum(len(part) for part in self._body) > MAX_BODY:
                    self._respond(413, {"error": "too_large", "reason": "request body over 1 MiB"})
                    self._close()
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._answer()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _answer(self) -> None:
        request = self._request
        assert request is not None
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in request.headers}
        try:
            status, data = self.api.handle(
                request.method.decode(), request.target.decode(errors="replace"), headers, b"".join(self._body)
            )
        except HttpError as exc:
            status, data = exc.status, {"error": exc.error, "reason": exc.reason}
        except Exception:  # a request the API did not foresee costs that request, never the broker
            log.exception("management API: %s %s failed", request.method, request.target)
            status, data = 500, {"error": "internal_error", "reason": "the embedded broker failed on this request"}
        self._respond(status, data)

    def _respond(self, status: int, data: Any) -> None:
        body = b"" if data is None else json.dumps(data).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        if status == 401:
            headers.append(("www-authenticate", 'Basic realm="RabbitMQ Management"'))
        try:
            out = self.http.send(h11.Response(status_code=status, headers=headers))
            out += self.http.send(h11.Data(data=body)) if body else b""
            out += self.http.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self._close()
            return
        if self.transport is not None:
            self.transport.write(out)
        if self.http.our_state is h11.MUST_CLOSE:
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


MAX_PATTERN = 1000  # characters of a name filter's regular expression


def _regex(pattern: str) -> Any:
    """A user's name filter, compiled by RE2: linear in the name's length whatever the pattern, so no filter can
    stall the broker (Python's re backtracks exponentially on `(a+)+$`). RE2 has no back-references or lookaround:
    those are refused with 400, as an invalid pattern is."""
    if len(pattern) > MAX_PATTERN:
        raise HttpError(400, "bad_request", f"regular expression over {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False  # the broker's stderr is a pipe nobody may be reading
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise HttpError(400, "bad_request", f"invalid regular expression {pattern!r}: {reason}") from None
