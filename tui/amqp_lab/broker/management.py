"""A client of RabbitMQ's management HTTP API, cheap on brokers with thousands of queues.

Every call has a timeout, and every failure becomes a `ManagementError`
subclass whose message is one line a person can act on.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from amqp_lab.broker.errors import (
    ManagementBadResponse,
    ManagementError,
    ManagementForbidden,
    ManagementNotFound,
    ManagementObjectGone,
    ManagementRefused,
    ManagementServerError,
    ManagementTimeout,
    ManagementTlsError,
    ManagementUnauthorized,
    ManagementUnreachable,
    ReadOnlyRefused,
)
from amqp_lab.broker.models import (
    Binding,
    Channel,
    ChannelActivity,
    ClientConnection,
    Consumer,
    Exchange,
    NodeStatus,
    Overview,
    PeekedMessage,
    QueueArguments,
    QueueDetail,
    QueuePage,
    QueueStats,
    Vhost,
    expect_list,
    expect_object,
    number,
)
from amqp_lab.broker.tls import tls_context
from amqp_lab.config import Settings
from amqp_lab.masking import mask_text

MAX_PAGE_SIZE = 500  # RabbitMQ refuses larger pages
PEEK_TRUNCATE = 64 * 1024  # bytes of each peeked payload the broker sends back
# A page of 500 queues is well under 1 MB; anything far beyond is not an API answer.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
SERVER_ERROR_PAUSES = (0.25, 1.0)  # seconds before asking a read again after an HTTP 5xx

Record = TypeVar("Record")


class ManagementClient:
    """Async client for a broker's management API (on a cluster, of the first node that answers). Use as an async
    context manager."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._secrets = settings.secrets()
        self._origin = settings
        self._urls = (settings.management_url, *settings.management_fallbacks)
        self._at = 0
        self._transport = transport
        self._use(settings)

    def _use(self, settings: Settings) -> None:
        """Talk to the management API at settings.management_url from now on."""
        self.settings = settings
        verify: ssl.SSLContext | bool = True
        if settings.management_base.startswith("https"):
            verify = tls_context(settings.tls)
        self._client = httpx.AsyncClient(
            base_url=settings.management_base,
            auth=settings.management_credentials,
            timeout=httpx.Timeout(settings.timeout),
            verify=verify,
            transport=self._transport,
            headers={"accept": "application/json"},
            follow_redirects=False,
        )

    async def __aenter__(self) -> ManagementClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the calls ---------------------------------------------------------

    async def overview(self) -> Overview:
        return Overview.parse(await self.get_json("api/overview"))

    async def nodes(self) -> list[NodeStatus]:
        return self._records(await self.get_json("api/nodes", columns=NodeStatus.COLUMNS), NodeStatus.parse, "nodes")

    async def vhosts(self) -> list[Vhost]:
        return self._records(await self.get_json("api/vhosts", columns="name,messages"), Vhost.parse, "vhosts")

    async def queue_page(
        self,
        vhost: str | None = None,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        name: str | None = None,
        sort: str | None = None,
        sort_reverse: bool = False,
    ) -> QueuePage:
        """One page of queues with only the columns the lab shows.

        `name` filters on the server by a regular expression over queue names;
        `sort` names the field (dotted for nested ones) the server sorts by before paging.
        """
        params: dict[str, Any] = {
            "page": page,
            "page_size": min(max(page_size, 1), MAX_PAGE_SIZE),
            "columns": QueueStats.COLUMNS,
        }
        if name:
            params["name"] = name
            params["use_regex"] = "true"
        if sort:
            params["sort"] = sort
            params["sort_reverse"] = "true" if sort_reverse else "false"
        data = expect_object(await self.get_json(_scoped("api/queues", vhost), **params), "a queue page")
        what = "queue page"
        return QueuePage(
            items=tuple(self._records(data.get("items"), QueueStats.parse, "queues")),
            page=int(number(data, "page", what)),
            page_count=int(number(data, "page_count", what)),
            total_count=int(number(data, "total_count", what)),
            filtered_count=int(number(data, "filtered_count", what)),
        )

    async def queues_with_arguments(self, vhost: str, name: str) -> list[QueueArguments]:
        """Every queue whose name matches the regular expression `name`, with its arguments, page by page."""
        found: list[QueueArguments] = []
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "page_size": MAX_PAGE_SIZE, "name": name, "use_regex": "true"}
            data = expect_object(
                await self.get_json(_scoped("api/queues", vhost), columns=QueueArguments.COLUMNS, **params),
                "a queue page",
            )
            items = self._records(data.get("items"), QueueArguments.parse, "queues")
            found.extend(items)
            if page >= int(number(data, "page_count", "queue page")) or not items:
                return found
            page += 1

    async def queues(
        self,
        vhost: str | None = None,
        name: str | None = None,
        limit: int = 5000,
        sort: str | None = None,
        sort_reverse: bool = False,
    ) -> tuple[list[QueueStats], int]:
        """Queues page by page, up to `limit`; also returns how many match in all."""
        found: list[QueueStats] = []
        page = 1
        while True:
            result = await self.queue_page(
                vhost, page=page, page_size=min(limit, MAX_PAGE_SIZE), name=name, sort=sort, sort_reverse=sort_reverse
            )
            found.extend(result.items)
            if page >= result.page_count or len(found) >= limit or not result.items:
                return found[:limit], result.filtered_count
            page += 1

    async def exchanges(self, vhost: str | None = None) -> list[Exchange]:
        return self._records(
            await self.get_json(_scoped("api/exchanges", vhost), columns=Exchange.COLUMNS), Exchange.parse, "exchanges"
        )

    async def exchange(self, vhost: str, name: str) -> Exchange:
        path = _object("api/exchanges", vhost, name)
        data = await self.get_json(path, gone=_gone("exchange", vhost, name), columns=Exchange.COLUMNS)
        return Exchange.parse(expect_object(data, "an exchange"))

    async def bindings(self, vhost: str | None = None) -> list[Binding]:
        return self._records(await self.get_json(_scoped("api/bindings", vhost)), Binding.parse, "bindings")

    async def bindings_from(self, vhost: str, exchange: str) -> list[Binding]:
        """The bindings whose source is one exchange: what it routes to."""
        path = _object("api/exchanges", vhost, exchange) + "/bindings/source"
        return self._records(
            await self.get_json(path, gone=_gone("exchange", vhost, exchange)), Binding.parse, "bindings"
        )

    async def queue_bindings(self, vhost: str, queue: str) -> list[Binding]:
        path = _object("api/queues", vhost, queue) + "/bindings"
        return self._records(await self.get_json(path, gone=_gone("queue", vhost, queue)), Binding.parse, "bindings")

    async def queue(self, vhost: str, name: str) -> QueueDetail:
        path = _object("api/queues", vhost, name)
        return QueueDetail.parse(
            await self.get_json(path, gone=_gone("queue", vhost, name), columns=QueueDetail.COLUMNS)
        )

    async def channel_activity(self, name: str) -> ChannelActivity:
        path = "api/channels/" + quote(name, safe="")
        return ChannelActivity.parse(await self.get_json(path, gone=f"channel {name!r} is closed"))

    async def consumers(self, vhost: str | None = None) -> list[Consumer]:
        return self._records(await self.get_json(_scoped("api/consumers", vhost)), Consumer.parse, "consumers")

    async def connections(self) -> list[ClientConnection]:
        return self._records(
            await self.get_json("api/connections", columns=ClientConnection.COLUMNS),
            ClientConnection.parse,
            "connections",
        )

    async def channels(self) -> list[Channel]:
        return self._records(await self.get_json("api/channels", columns=Channel.COLUMNS), Channel.parse, "channels")

    # -- calls that change the broker (refused in read-only mode) -----------

    async def peek(self, vhost: str, queue: str, count: int) -> list[PeekedMessage]:
        """Take up to `count` messages and give them straight back (ack_requeue_true).

        They return to the queue marked redelivered, and a consumer may get them meanwhile.
        """
        path = _object("api/queues", vhost, queue) + "/get"
        body = {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": PEEK_TRUNCATE}
        data = await self._change("POST", path, _gone("queue", vhost, queue), body)
        return self._records(data, PeekedMessage.parse, "peeked messages")

    async def purge(self, vhost: str, queue: str) -> None:
        await self._change("DELETE", _object("api/queues", vhost, queue) + "/contents", _gone("queue", vhost, queue))

    async def delete_queue(self, vhost: str, queue: str) -> None:
        await self._change("DELETE", _object("api/queues", vhost, queue), _gone("queue", vhost, queue))

    async def delete_exchange(self, vhost: str, exchange: str) -> None:
        await self._change("DELETE", _object("api/exchanges", vhost, exchange), _gone("exchange", vhost, exchange))

    # -- plumbing ----------------------------------------------------------

    def _records(self, data: Any, parse: Callable[[Any], Record], what: str) -> list[Record]:
        return [parse(item) for item in expect_list(data, what)]

    async def get_json(self, path: str, gone: str | None = None, **params: Any) -> Any:
        """GET a path under the API and decode its JSON, mapping every failure to a typed error.

        `gone` is what a 404 means when the path names one object (instead of a missing API).
        """
        return await self._request("GET", path, gone, params=params or None)

    async def _change(self, method: str, path: str, gone: str, body: Any = None) -> Any:
        if self.settings.read_only:
            raise ReadOnlyRefused(f"read-only mode: {method} {path} would change the broker")
        return await self._request(method, path, gone, json_body=body)

    async def _request(
        self, method: str, path: str, gone: str | None, params: Any = None, json_body: Any = None
    ) -> Any:
        """On a cluster, a node that does not answer hands the request to the next node's API, which stays in use."""
        for tried in range(1, len(self._urls) + 1):
            try:
                return await self._answered(method, path, gone, params, json_body)
            except (ManagementUnreachable, ManagementTimeout):
                if tried == len(self._urls):
                    raise
                await self._client.aclose()
                self._at = (self._at + 1) % len(self._urls)
                self._use(replace(self._origin, management_url=self._urls[self._at]))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _answered(self, method: str, path: str, gone: str | None, params: Any, json_body: Any) -> Any:
        """A loaded broker's API answers a read with a passing 500 now and then (RabbitMQ 4.0 under load, seen on
        /api/exchanges): reads are asked again after a pause before the error counts."""
        pauses = SERVER_ERROR_PAUSES if method == "GET" else ()
        for pause in pauses:
            try:
                return await self._request_here(method, path, gone, params, json_body)
            except ManagementServerError:
                await asyncio.sleep(pause)
        return await self._request_here(method, path, gone, params, json_body)

    async def _request_here(
        self, method: str, path: str, gone: str | None, params: Any = None, json_body: Any = None
    ) -> Any:
        where = self.settings.management_display
        try:
            # One deadline for the whole answer: a server that drips bytes slowly
            # never trips httpx's per-read timeout.
            async with asyncio.timeout(self.settings.timeout):
                body = await self._fetch(method, path, gone, params, json_body)
        except ManagementError:
            raise
        except (httpx.TimeoutException, TimeoutError):
            raise ManagementTimeout(
                f"management API at {where} did not answer within {self.settings.timeout:g} s "
                "(overloaded broker, or a firewall? raise --timeout)"
            ) from None
        except httpx.ConnectError as exc:
            raise self._connect_error(exc) from None
        except (httpx.ReadError, httpx.RemoteProtocolError):
            raise ManagementUnreachable(
                f"{where} closed the connection without an answer: a broker restarting, or not the "
                "management port (15672; AMQP is 5672)?"
            ) from None
        except httpx.HTTPError as exc:
            message = mask_text(str(exc) or type(exc).__name__, self._secrets)
            raise ManagementUnreachable(f"management API at {where} failed: {message}") from None
        if not body:  # 204 No Content: purge, delete
            return None
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ManagementBadResponse(
                f"{where} answered {path} with something that is not JSON: "
                "is --management-url the RabbitMQ management port (15672)?"
            ) from None

    async def _fetch(self, method: str, path: str, gone: str | None, params: Any, json_body: Any) -> bytes:
        # RabbitMQ 3.10 answers a purge that accepts only JSON with 406: it has no body to give.
        headers = {"accept": "*/*"} if method == "DELETE" else None
        async with self._client.stream(method, path, params=params, json=json_body, headers=headers) as response:
            if response.status_code == 404 and gone is not None:
                raise ManagementObjectGone(gone)
            if response.status_code == 400:  # the broker says why, as {"error": ..., "reason": ...}
                raise ManagementRefused(f"the broker refused {method} {path}: {_reason(await response.aread())}")
            self._check_status(response, path)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ManagementBadResponse(
                        f"management API at {self.settings.management_display} sent more than "
                        f"{MAX_RESPONSE_BYTES >> 20} MB for {path}: not a management API answer"
                    )
            return bytes(body)

    def _check_status(self, response: httpx.Response, path: str) -> None:
        where = self.settings.management_display
        status = response.status_code
        user = self.settings.management_credentials[0]
        if status < 300:
            return
        if status == 401:
            raise ManagementUnauthorized(
                f"management API at {where} refused user {user!r} (401): check the user name and password"
            )
        if status == 403:
            raise ManagementForbidden(
                f"user {user!r} may not use the management API at {where} (403): "
                "give the user the 'monitoring' or 'management' tag"
            )
        if status in (404, 406):  # RabbitMQ answers 406 for paths outside the API that only have HTML
            raise ManagementNotFound(
                f"{where} has no {path} ({status}): is the management plugin enabled "
                "(rabbitmq-plugins enable rabbitmq_management) and the URL its root?"
            )
        if status >= 500:
            raise ManagementServerError(
                f"management API at {where} failed with HTTP {status} on {path}: see the broker's log"
            )
        raise ManagementBadResponse(f"management API at {where} answered {path} with HTTP {status}")

    def _connect_error(self, exc: httpx.ConnectError) -> ManagementError:
        where = self.settings.management_display
        cause = exc.__cause__ or exc.__context__
        while cause is not None and not isinstance(cause, ssl.SSLError | OSError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ManagementTlsError(
                f"TLS certificate of {where} not trusted ({cause.verify_message}): give --ca-file, "
                "or --no-verify to skip the check"
            )
        if isinstance(cause, ssl.SSLError):
            return ManagementTlsError(
                f"TLS handshake with {where} failed ({cause.reason}): "
                "does that port speak https? (http://...:15672 is plain)"
            )
        return ManagementUnreachable(
            f"nothing answers at {where}: is the management plugin enabled, "
            "and is the port right (15672 by default)? Set --management-url"
        )


def _scoped(path: str, vhost: str | None) -> str:
    return path if vhost is None else f"{path}/{quote(vhost, safe='')}"


def _reason(body: bytes) -> str:
    try:
        reason = json.loads(body[:4096]).get("reason")
    except (ValueError, AttributeError):
        reason = None
    return reason[:300] if isinstance(reason, str) else "bad request (400)"


def _object(path: str, vhost: str, name: str) -> str:
    # The API calls the default exchange, whose name is empty, amq.default.
    return f"{_scoped(path, vhost)}/{quote(name or 'amq.default', safe='')}"


def _gone(kind: str, vhost: str, name: str) -> str:
    return f"{kind} {name!r} in vhost {vhost!r} does not exist (deleted meanwhile?)"
