"""The AMQP connection manager: one connection, its state made visible, failover and capped backoff.

aio-pika's robust connection reconnects silently; the lab must show every
transition (a workshop watches the broker go away), so it keeps a plain
connection and does the reconnecting itself, trying the configured nodes in
order.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractConnection

from amqp_lab import __version__
from amqp_lab.broker.errors import (
    AmqpAccessRefused,
    AmqpError,
    AmqpProtocolError,
    AmqpTimeout,
    AmqpTlsError,
    AmqpUnreachable,
    AmqpVhostNotAllowed,
)
from amqp_lab.broker.tls import tls_context
from amqp_lab.config import Endpoint, Settings, SettingsError
from amqp_lab.masking import mask_text


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class ConnectionStatus:
    """One state of the connection, as a listener receives it."""

    state: ConnectionState
    endpoint: str  # masked URL of the node tried or connected
    reason: str | None = None  # why it is not connected, one line
    attempt: int = 0  # reconnect attempts since the connection was lost
    down_since: float | None = None  # while reconnecting: when the connection was lost


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnect rounds: doubling from `initial`, never above `cap`."""

    initial: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.initial * 2.0 ** max(attempt - 1, 0))


Listener = Callable[[ConnectionStatus], None]


async def open_connection(settings: Settings, endpoint: Endpoint, name: str = "") -> AbstractConnection:
    """Connect to one node, turning every failure into an `AmqpError` with a fix in its message. `name` is added
    to the connection name the broker shows (its connection list says which run and client it is)."""
    query: dict[str, Any] = dict(endpoint.query)  # the URL's options, as aio-pika's keyword arguments
    if settings.heartbeat is not None:  # the option wins over the URL's ?heartbeat=
        query["heartbeat"] = str(settings.heartbeat)
    try:
        connection: AbstractConnection = await aio_pika.connect(
            host=endpoint.host,
            port=endpoint.port,
            login=endpoint.username,
            password=endpoint.password,
            virtualhost=settings.vhost,
            ssl=endpoint.tls,
            ssl_context=tls_context(settings.tls) if endpoint.tls else None,
            timeout=settings.timeout,
            client_properties={"connection_name": f"amqp-lab {__version__} {name}".rstrip()},
            **query,
        )
    except Exception as exc:
        raise describe_failure(exc, settings, endpoint) from None
    return connection


def describe_failure(exc: BaseException, settings: Settings, endpoint: Endpoint) -> AmqpError:
    """The typed error, with a message that names what to fix, for a failed connect."""
    shown = endpoint.display()
    detail = mask_text(str(exc), settings.secrets())
    cause = exc.args[0] if isinstance(exc, aiormq.exceptions.AMQPConnectionError) and exc.args else None
    if isinstance(exc, SettingsError):  # the TLS files could not be loaded
        return AmqpTlsError(str(exc))
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError | aiormq.exceptions.AuthenticationError):
        return AmqpAccessRefused(
            f"{shown} refused user {endpoint.username!r} (ACCESS_REFUSED): check the user name and password"
        )
    if isinstance(exc, aiormq.exceptions.InvalidFrameError) and "Connection.Close" in detail:
        # The broker closed the connection at connection.open: the vhost is refused.
        return AmqpVhostNotAllowed(
            f"{shown} refused vhost {settings.vhost!r} (NOT_ALLOWED): it does not exist or user "
            f"{endpoint.username!r} has no permission there; check --vhost"
        )
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in detail:
        return AmqpTlsError(f"TLS certificate of {shown} not trusted: give --ca-file, or --no-verify to skip the check")
    if isinstance(exc, ssl.SSLError) or "[SSL" in detail:
        return AmqpTlsError(
            f"TLS handshake with {shown} failed: does that port speak TLS? "
            "(amqps:// is usually port 5671, amqp:// port 5672)"
        )
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return AmqpTimeout(
            f"no AMQP handshake from {endpoint.address} within {settings.timeout:g} s: is that the AMQP "
            "port (5672) and not, say, the management port (15672)?"
        )
    if isinstance(exc, socket.gaierror) or cause in (-2, -3, -5):
        return AmqpUnreachable(f"cannot resolve host {endpoint.host!r}: check the host name in the AMQP URL")
    if isinstance(exc, ConnectionRefusedError) or cause == 111:
        return AmqpUnreachable(
            f"nothing listens at {endpoint.address}: is RabbitMQ running, and is the port right (5672)?"
        )
    if isinstance(exc, OSError | aiormq.exceptions.AMQPError):
        return AmqpUnreachable(f"cannot connect to {shown}: {detail or type(exc).__name__}")
    return AmqpProtocolError(f"unexpected answer from {shown}: {detail or type(exc).__name__}")


class ConnectionManager:
    """Keeps one AMQP connection to the first node that answers and reports every state change."""

    def __init__(self, settings: Settings, backoff: Backoff = Backoff()) -> None:
        self.settings = settings
        self.backoff = backoff
        self._listeners: list[Listener] = []
        self._connection: AbstractConnection | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self._down_since: float | None = None
        self.status = ConnectionStatus(ConnectionState.CLOSED, settings.primary.display())

    @property
    def connection(self) -> AbstractConnection | None:
        return self._connection if self.status.state is ConnectionState.CONNECTED else None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _set(self, state: ConnectionState, endpoint: str, reason: str | None = None, attempt: int = 0) -> None:
        down_since = self._down_since if state is ConnectionState.RECONNECTING else None
        self.status = ConnectionStatus(state, endpoint, reason, attempt, down_since)
        for listener in list(self._listeners):
            listener(self.status)

    async def connect(self) -> ConnectionStatus:
        """First connection: one round over the nodes. Ends CONNECTED or FAILED, never raises AmqpError."""
        self._closing = False
        error = await self._round(ConnectionState.CONNECTING, attempt=0)
        if error is not None:
            self._set(ConnectionState.FAILED, self.status.endpoint, str(error))
        return self.status

    async def _round(self, state: ConnectionState, attempt: int) -> AmqpError | None:
        """Try every node once, in order; the last error if none answered."""
        error: AmqpError | None = None
        for endpoint in self.settings.endpoints:
            reason = str(error) if error else self.status.reason
            self._set(state, endpoint.display(), reason, attempt)
            try:
                connection = await open_connection(self.settings, endpoint)
            except AmqpError as exc:
                error = exc
                if exc.fatal:
                    return exc
                continue
            if self._closing:
                await connection.close()
                return None
            self._connection = connection
            connection.close_callbacks.add(self._on_close)
            self._set(ConnectionState.CONNECTED, endpoint.display())
            return None
        return error

    def _on_close(self, _sender: object, exc: BaseException | None = None) -> None:
        if self._closing:
            return
        self._connection = None
        self._down_since = time.monotonic()
        reason = mask_text(str(exc), self.settings.secrets()) if exc else "the broker closed the connection"
        self._set(ConnectionState.RECONNECTING, self.status.endpoint, f"connection lost: {reason}", attempt=0)
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            attempt += 1
            await asyncio.sleep(self.backoff.delay(attempt))
            error = await self._round(ConnectionState.RECONNECTING, attempt)
            if error is None:
                return
            if error.fatal:
                self._set(ConnectionState.FAILED, self.status.endpoint, str(error))
                return
            self._set(ConnectionState.RECONNECTING, self.status.endpoint, str(error), attempt)

    async def retry(self) -> ConnectionStatus:
        """Start over after FAILED (or now, instead of waiting for the backoff)."""
        await self._stop_reconnecting()
        return await self.connect()

    async def _stop_reconnecting(self) -> None:
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        self._closing = True
        await self._stop_reconnecting()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            await connection.close()
        self._set(ConnectionState.CLOSED, self.status.endpoint)


async def connect_first(settings: Settings, name: str = "") -> AbstractConnection:
    """One connection to the first node that answers, in the configured order (for the lab's own clients)."""
    error: AmqpError | None = None
    for endpoint in settings.endpoints:
        try:
            return await open_connection(settings, endpoint, name)
        except AmqpError as exc:
            error = exc
            if exc.fatal:
                break
    assert error is not None  # settings always hold at least one endpoint
    raise error
