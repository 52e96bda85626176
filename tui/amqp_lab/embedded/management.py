"""The subset of RabbitMQ's management HTTP API that amqp-lab uses, with RabbitMQ's field names.

Requests are routed by a table of path templates (`ROUTES`): a path no template fits is 404, one that fits only for
another method 405, as RabbitMQ answers. The documents are `documents.py`'s, the HTTP/1.1 side `http.py`'s.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import re2
from pamqp.commands import Basic

from amqp_lab.embedded.errors import AmqpFault
from amqp_lab.embedded.queues import Message
from amqp_lab.embedded.queues import Queue as BrokerQueue
from amqp_lab.embedded.vhost import DEFAULT_ALIAS, Vhost
from amqp_lab.embedded.wire import encode_header_payload

if TYPE_CHECKING:
    from amqp_lab.embedded.server import Broker

from amqp_lab.embedded.documents import Documents
from amqp_lab.embedded.http import HttpConnection, HttpError, not_found

SAMPLE_EVERY = 1.0

# A request's path placeholders ({vhost}, {name}: percent-decoded), or its query (the last value of each key).
Params = dict[str, str]


class ManagementApi:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.documents = Documents(broker)
        self._sampler: asyncio.Task[None] | None = None

    def protocol(self) -> HttpConnection:
        if self._sampler is None:
            self._sampler = asyncio.get_running_loop().create_task(self._sampling())
        return HttpConnection(self)

    async def _sampling(self) -> None:
        while True:
            self.documents.sample(time.monotonic())
            await asyncio.sleep(SAMPLE_EVERY)

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if not self._authorised(headers.get("authorization", "")):
            raise HttpError(401, "not_authorised", "Login failed")
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if not parts or parts[0] != "api":
            raise not_found()
        handler, params = route(method, parts[1:])
        data = handler(self, params, query, body)
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
            raise not_found()
        return found

    def _vhosts(self, names: list[str]) -> Iterable[Vhost]:
        return [self._vhost(names[0])] if names else list(self.broker.vhosts.values())

    def _queue(self, vhost: str, name: str) -> BrokerQueue:
        found = self._vhost(vhost).queues.get(name)
        if found is None:
            raise not_found()
        return found

    def _exchange(self, params: Params) -> tuple[Vhost, str]:
        vhost = self._vhost(params["vhost"])
        name = "" if params["name"] == DEFAULT_ALIAS else params["name"]
        if name not in vhost.exchanges:
            raise not_found()
        return vhost, name

    def _scope(self, params: Params) -> Iterable[Vhost]:
        """The path's vhost, or every vhost when the path names none."""
        return self._vhosts([params["vhost"]] if "vhost" in params else [])

    # Reading

    def get_overview(self, params: Params, query: Params, body: bytes) -> Any:
        return self.documents.overview()

    def get_nodes(self, params: Params, query: Params, body: bytes) -> Any:
        return [self.documents.node_document()]

    def get_whoami(self, params: Params, query: Params, body: bytes) -> Any:
        return {"name": self.broker.options.user, "tags": ["administrator"]}

    def get_vhosts(self, params: Params, query: Params, body: bytes) -> Any:
        return [self.documents.vhost_document(v) for v in self.broker.vhosts.values()]

    def get_queues(self, params: Params, query: Params, body: bytes) -> Any:
        queues = [q for v in self._scope(params) for q in v.queues.values()]
        return self._page([self.documents.queue_document(q) for q in queues], query)

    def get_queue(self, params: Params, query: Params, body: bytes) -> Any:
        queue = self._queue(params["vhost"], params["name"])
        document = self.documents.queue_document(queue)
        document["consumer_details"] = [self.documents.consumer_document(c) for c in queue.consumers]
        return document

    def get_queue_bindings(self, params: Params, query: Params, body: bytes) -> Any:
        queue = self._queue(params["vhost"], params["name"])
        bindings = self.documents.bindings(queue.vhost)
        return [b for b in bindings if b["destination"] == queue.name and b["destination_type"] == "queue"]

    def get_exchanges(self, params: Params, query: Params, body: bytes) -> Any:
        return [self.documents.exchange_document(v, n) for v in self._scope(params) for n in v.exchanges]

    def get_exchange(self, params: Params, query: Params, body: bytes) -> Any:
        return self.documents.exchange_document(*self._exchange(params))

    def get_exchange_source_bindings(self, params: Params, query: Params, body: bytes) -> Any:
        vhost, name = self._exchange(params)
        return [b for b in self.documents.bindings(vhost) if b["source"] == name]

    def get_exchange_destination_bindings(self, params: Params, query: Params, body: bytes) -> Any:
        vhost, name = self._exchange(params)
        bindings = self.documents.bindings(vhost)
        return [b for b in bindings if b["destination"] == name and b["destination_type"] == "exchange"]

    def get_bindings(self, params: Params, query: Params, body: bytes) -> Any:
        return [b for v in self._scope(params) for b in self.documents.bindings(v)]

    def get_consumers(self, params: Params, query: Params, body: bytes) -> Any:
        return [c for v in self._scope(params) for c in self.documents.consumers(v)]

    def get_connections(self, params: Params, query: Params, body: bytes) -> Any:
        connections = [c for c in self.broker.connections if c.vhost is not None]
        return [self.documents.connection_document(c) for c in connections]

    def get_channels(self, params: Params, query: Params, body: bytes) -> Any:
        return [self.documents.channel_document(ch) for ch in self.documents.channels()]

    def get_channel(self, params: Params, query: Params, body: bytes) -> Any:
        channels = self.documents.channels()
        found = next((ch for ch in channels if self.documents.channel_name(ch) == params["name"]), None)
        if found is None:
            raise not_found()
        return self.documents.channel_document(found)

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

    # Acting

    def post_queue_get(self, params: Params, query: Params, body: bytes) -> Any:
        return self.get_messages(self._queue(params["vhost"], params["name"]), self._json(body))

    def post_exchange_publish(self, params: Params, query: Params, body: bytes) -> Any:
        return self.publish(self._vhost(params["vhost"]), params["name"], self._json(body))

    def delete_queue(self, params: Params, query: Params, body: bytes) -> Any:
        queue = self._queue(params["vhost"], params["name"])
        queue.vhost.remove_queue(queue)

    def delete_queue_contents(self, params: Params, query: Params, body: bytes) -> Any:
        self._queue(params["vhost"], params["name"]).purge()

    def delete_exchange(self, params: Params, query: Params, body: bytes) -> Any:
        vhost, name = self._exchange(params)
        try:
            vhost.delete_exchange(name, if_unused=False)
        except AmqpFault as fault:
            raise HttpError(403, "access_refused", fault.text) from None

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
            raise not_found()
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


Handler = Callable[[ManagementApi, Params, Params, bytes], Any]

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "overview", ManagementApi.get_overview),
    ("GET", "nodes", ManagementApi.get_nodes),
    ("GET", "whoami", ManagementApi.get_whoami),
    ("GET", "vhosts", ManagementApi.get_vhosts),
    ("GET", "queues", ManagementApi.get_queues),
    ("GET", "queues/{vhost}", ManagementApi.get_queues),
    ("GET", "queues/{vhost}/{name}", ManagementApi.get_queue),
    ("DELETE", "queues/{vhost}/{name}", ManagementApi.delete_queue),
    ("GET", "queues/{vhost}/{name}/bindings", ManagementApi.get_queue_bindings),
    ("DELETE", "queues/{vhost}/{name}/contents", ManagementApi.delete_queue_contents),
    ("POST", "queues/{vhost}/{name}/get", ManagementApi.post_queue_get),
    ("GET", "exchanges", ManagementApi.get_exchanges),
    ("GET", "exchanges/{vhost}", ManagementApi.get_exchanges),
    ("GET", "exchanges/{vhost}/{name}", ManagementApi.get_exchange),
    ("DELETE", "exchanges/{vhost}/{name}", ManagementApi.delete_exchange),
    ("GET", "exchanges/{vhost}/{name}/bindings/source", ManagementApi.get_exchange_source_bindings),
    ("GET", "exchanges/{vhost}/{name}/bindings/destination", ManagementApi.get_exchange_destination_bindings),
    ("POST", "exchanges/{vhost}/{name}/publish", ManagementApi.post_exchange_publish),
    ("GET", "bindings", ManagementApi.get_bindings),
    ("GET", "bindings/{vhost}", ManagementApi.get_bindings),
    ("GET", "consumers", ManagementApi.get_consumers),
    ("GET", "consumers/{vhost}", ManagementApi.get_consumers),
    ("GET", "connections", ManagementApi.get_connections),
    ("GET", "channels", ManagementApi.get_channels),
    ("GET", "channels/{name}", ManagementApi.get_channel),
)


def _matches(template: str, parts: list[str]) -> Params | None:
    """The placeholders' values if the path fits the template, segment for segment."""
    segments = template.split("/")
    if len(segments) != len(parts):
        return None
    params: Params = {}
    for segment, part in zip(segments, parts, strict=True):
        if segment.startswith("{"):
            params[segment.strip("{}")] = part
        elif segment != part:
            return None
    return params


def route(method: str, parts: list[str]) -> tuple[Handler, Params]:
    """The handler for a path after /api/, with its placeholders: 405 if only another method has one, else 404."""
    allowed = False
    for route_method, template, handler in ROUTES:
        params = _matches(template, parts)
        if params is not None and route_method == method:
            return handler, params
        allowed = allowed or params is not None
    if allowed:
        raise HttpError(405, "Method Not Allowed", f"{method} /api/{'/'.join(parts)}")
    raise not_found()


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
