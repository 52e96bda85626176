"""The embedded broker as a server: its state, its listeners (AMQP and the management API) and its safety rules."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import itertools
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from amqp_lab.embedded.channel import Channel
from amqp_lab.embedded.connection import Connection
from amqp_lab.embedded.errors import AmqpFault
from amqp_lab.embedded.vhost import Vhost
from amqp_lab.parent_link import stop_when_stdin_closes

DEFAULT_USER = "guest"
DEFAULT_PASSWORD = "guest"
LOOPBACK = "127.0.0.1"
TICK = 0.05  # seconds between expiry checks (message TTL, x-expires)


class BrokerSetupError(Exception):
    """The broker cannot start as asked; the message says what to change."""


DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # RabbitMQ 4's max_message_size (3.x: 128 MiB)
MAX_MESSAGE_SIZE_CEILING = 512 * 1024 * 1024  # RabbitMQ refuses a larger max_message_size
MESSAGE_OVERHEAD = 750  # bytes a held message costs beyond its body, header included (measured: ~1.77 KB per 1 KB)
MEMORY_CHECKS = 10  # ticks between memory checks: twice a second


def default_memory_limit() -> int:
    """RabbitMQ 3's vm_memory_high_watermark: 0.4 of the machine's memory (1 GiB where it cannot be read)."""
    try:
        return int(0.4 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 30


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def _bytes(text: str, flag: str, example: str) -> tuple[float, str]:
    match = _SIZE.match(text)
    if not match:
        raise BrokerSetupError(f"{flag} {text!r}: give a size such as {example}")
    return float(match.group(1)), (match.group(2) or "").lower()


def _scaled(number: float, unit: str) -> int:
    return int(number * (1024 ** "bkmgt".index(unit[0]) if unit else 1))


def parse_memory_limit(text: str) -> int:
    """Bytes from 256MB, 1GiB, 512m, or a fraction of the machine's memory such as 0.4 (RabbitMQ's way)."""
    number, unit = _bytes(text, "--memory-limit", "256MB or 1GB, or a fraction such as 0.4")
    if not unit and number < 1:
        return int(number / 0.4 * default_memory_limit())
    limit = _scaled(number, unit)
    if limit < 1 << 20:
        raise BrokerSetupError(f"--memory-limit {text!r}: at least 1 MB, or every publisher waits at once")
    return limit


def parse_max_message_size(text: str) -> int:
    """RabbitMQ's max_message_size: from 1 byte up to its own ceiling, 512 MiB."""
    size = _scaled(*_bytes(text, "--max-message-size", "16MB or 128MiB"))
    if not 1 <= size <= MAX_MESSAGE_SIZE_CEILING:
        raise BrokerSetupError(f"--max-message-size {text!r}: RabbitMQ allows 1 byte to 512 MiB")
    return size


@dataclass(frozen=True)
class TlsOptions:
    """amqps and https listeners beside the plain ones, as RabbitMQ's listeners.ssl and management.ssl."""

    cert_file: str
    key_file: str
    ca_file: str | None = None  # given: clients may present a certificate, checked against it (never required)
    amqps_port: int = 5671
    https_port: int = 15671

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.ca_file:
                context.load_verify_locations(self.ca_file)
                context.verify_mode = ssl.CERT_OPTIONAL
        except (OSError, ssl.SSLError) as exc:
            raise BrokerSetupError(
                f"cannot use the TLS certificate: {exc}; check --tls-cert, --tls-key and --tls-ca"
            ) from None
        return context


@dataclass(frozen=True)
class BrokerOptions:
    bind: str = LOOPBACK
    amqp_port: int = 5672
    management_port: int = 15672
    user: str = DEFAULT_USER
    password: str = DEFAULT_PASSWORD
    memory_limit: int = field(default_factory=default_memory_limit)  # bytes of held messages: past it, publishers wait
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    tls: TlsOptions | None = None

    def check(self) -> None:
        """Loopback only unless asked; and then not with the well-known default password."""
        try:
            loopback = all(ipaddress.ip_address(a).is_loopback for a in _addresses(self.bind))
        except ValueError:
            raise BrokerSetupError(f"cannot bind {self.bind!r}: no such address; try 127.0.0.1") from None
        if not loopback and self.password in (DEFAULT_PASSWORD, ""):
            which = "an empty password" if not self.password else "the well-known default password"
            raise BrokerSetupError(
                f"binding {self.bind} would let other machines in with {which}: "
                "give --password (or AMQP_LAB_BROKER_PASSWORD), and --user, to bind beyond loopback"
            )
        tls_ports = (self.tls.amqps_port, self.tls.https_port) if self.tls else ()
        for port in (self.amqp_port, self.management_port, *tls_ports):
            if not 0 <= port <= 65535:
                raise BrokerSetupError(f"port {port} is not a port: use 1 to 65535, or 0 for a free one")


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def _addresses(host: str) -> list[str]:
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except socket.gaierror:
        raise ValueError(host) from None


class Broker:
    def __init__(self, options: BrokerOptions) -> None:
        self.options = options
        self.vhosts = {"/": Vhost("/")}
        self.connections: set[Connection] = set()
        self.reply_channels: dict[str, Channel] = {}
        self.cluster_name = f"amqp-lab@{socket.gethostname()}"
        self.started = time.time()
        self._servers: list[asyncio.Server] = []
        self._tick: asyncio.Task[None] | None = None
        self.amqp_port = 0
        self.management_port = 0
        self.amqps_port = 0
        self.https_port = 0
        self.memory_alarm = False  # held messages are over options.memory_limit: publishing connections are blocked
        self.memory_used = 0

    def authenticate(self, user: str, password: str) -> bool:
        return hmac.compare_digest(user.encode(), self.options.user.encode()) and hmac.compare_digest(
            password.encode(), self.options.password.encode()
        )

    async def start(self) -> None:
        """Listen for AMQP and the management API; ports 0 pick free ones (see amqp_port, management_port)."""
        from amqp_lab.embedded.management import ManagementApi

        self.options.check()
        loop = asyncio.get_running_loop()
        options = self.options
        api = ManagementApi(self)
        try:
            if options.tls is not None:  # first: once the plain ports answer, everything listens
                context = options.tls.context()
                amqps = await loop.create_server(
                    lambda: Connection(self), options.bind, options.tls.amqps_port, ssl=context
                )
                self._servers.append(amqps)
                https = await loop.create_server(api.protocol, options.bind, options.tls.https_port, ssl=context)
                self._servers.append(https)
                self.amqps_port, self.https_port = _port(amqps), _port(https)
            amqp = await loop.create_server(lambda: Connection(self), options.bind, options.amqp_port)
            self._servers.append(amqp)
            http = await loop.create_server(api.protocol, options.bind, options.management_port)
            self._servers.append(http)
        except OSError as exc:
            await self.stop()
            raise BrokerSetupError(f"cannot listen on {options.bind}: {exc.strerror or exc}") from None
        except BrokerSetupError:
            await self.stop()
            raise
        self.amqp_port, self.management_port = _port(amqp), _port(http)
        self._tick = loop.create_task(self._ticking())

    async def _ticking(self) -> None:
        for tick in itertools.count():
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for vhost in self.vhosts.values():
                vhost.tick(now)
            if tick % MEMORY_CHECKS == 0:
                self.check_memory()

    def check_memory(self) -> None:
        """RabbitMQ's memory alarm, over what the broker holds: queued and unacked messages. Raised past the limit
        (a connection that publishes is then blocked: connection.blocked, and no more of its frames read); cleared
        once below it again (connection.unblocked, reading resumes)."""
        held = [q.held for vhost in self.vhosts.values() for q in vhost.queues.values()]
        unacked = [
            d.queued.message for c in self.connections for ch in c.channels.values() for d in ch.unacked.values()
        ]
        self.memory_used = sum(size + count * MESSAGE_OVERHEAD for size, count in held)
        self.memory_used += sum(len(m.body) + MESSAGE_OVERHEAD for m in unacked)
        alarm = self.memory_used > self.options.memory_limit
        if self.memory_alarm and not alarm:
            for connection in list(self.connections):
                connection.unblock()
        self.memory_alarm = alarm

    async def stop(self) -> None:
        """As RabbitMQ shuts down: every client is told (320 CONNECTION_FORCED), then the sockets close."""
        if self._tick is not None:
            self._tick.cancel()
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.close_connection(AmqpFault(320, "broker forced connection closure with reason 'shutdown'"))
            connection.flush()
        await asyncio.sleep(0)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


async def serve(options: BrokerOptions, ready: Callable[[Broker], None], until_stdin_closes: bool = False) -> None:
    """Run until cancelled (Ctrl-C), or, with `until_stdin_closes`, until standard input ends: the lab that
    started the broker holds its other end, and however the lab ends, even killed, the broker ends with it.
    `ready` gets the broker once every listener listens (its ports say where)."""
    broker = Broker(options)
    await broker.start()
    ready(broker)
    done = asyncio.Event()
    if until_stdin_closes:
        stop_when_stdin_closes(done)
    try:
        await done.wait()
    finally:
        await broker.stop()
