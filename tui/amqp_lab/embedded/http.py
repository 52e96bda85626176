"""The management API's HTTP/1.1 server side: h11 parses each request, a handler answers it as (status, JSON)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

import h11

MAX_BODY = 1 << 20

log = logging.getLogger(__name__)


class HttpError(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def not_found() -> HttpError:
    return HttpError(404, "Object Not Found", "Not Found")


class Handler(Protocol):
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]: ...


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 client: requests parsed by h11, answered in order."""

    def __init__(self, api: Handler) -> None:
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
