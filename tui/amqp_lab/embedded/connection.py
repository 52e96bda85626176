"""One client connection to the embedded broker: the handshake, heartbeats, and its channels."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from pamqp import common
from pamqp.base import Frame as Method
from pamqp.commands import Basic
from pamqp.commands import Channel as ChannelMethods
from pamqp.commands import Connection as ConnectionMethods

from amqp_lab import __version__
from amqp_lab.embedded.channel import Channel
from amqp_lab.embedded.errors import AmqpFault
from amqp_lab.embedded.wire import (
    BODY,
    HEADER,
    HEARTBEAT,
    HEARTBEAT_FRAME,
    METHOD,
    PROTOCOL_HEADER,
    FrameError,
    FrameReader,
    decode_method,
    encode_method,
)

if TYPE_CHECKING:
    from amqp_lab.embedded.server import Broker
    from amqp_lab.embedded.vhost import Vhost

log = logging.getLogger(__name__)

FRAME_MAX = 131072
FRAME_MIN = 4096  # the least frame_max a client may ask for (AMQP 0-9-1)
HANDSHAKE_TIMEOUT = 10.0  # RabbitMQ's handshake_timeout: a socket that does not open a connection by then is closed
# A client that does not read what it is sent (returns, deliveries) is not read from past this much unsent output,
# as RabbitMQ's flow control stops reading a publisher: what it is sent stays bounded.
WRITE_BUFFER_HIGH = 1024 * 1024
CHANNEL_MAX = 2047
HEARTBEAT_SECONDS = 60
CLOSE_OK_TIMEOUT = 3.0
CLIENT_CLOSE_TIMEOUT = 30.0  # RabbitMQ's CLOSING_TIMEOUT: after close-ok, how long the client has to close the socket
CAPABILITIES: common.FieldTable = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


class Connection(asyncio.Protocol):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.vhost: Vhost | None = None
        self.user = ""
        self.name = ""
        self.peer_host = ""
        self.peer_port = 0
        self.client_properties: dict[str, Any] = {}
        self.channels: dict[int, Channel] = {}
        self.frame_max = FRAME_MAX
        self.channel_max = CHANNEL_MAX
        self.heartbeat = 0
        self.tls = False
        self.opened_at = time.time()
        self._stage = "header"  # header, start-ok, tune-ok, open, open-ok, closing, closed
        self._header = b""
        self._reader = FrameReader(FRAME_MAX)
        self._last_received = time.monotonic()
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._pending: list[bytes] = []
        self._batching = False
        self.paused = False  # the socket's buffer is full: deliveries wait
        self._holds: set[str] = set()  # why this connection is not read from now
        self.stats: dict[str, int] = {"recv_oct": 0, "send_oct": 0}

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer_host, self.peer_port = transport.get_extra_info("peername")[:2]
        self.tls = transport.get_extra_info("ssl_object") is not None
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self.broker.connections.add(self)
        self._handshake_timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self._handshake_expired)

    def _handshake_expired(self) -> None:
        if self._stage not in ("open", "closing", "closed"):
            log.info(
                "closing %s:%s: no connection opened within %g s", self.peer_host, self.peer_port, HANDSHAKE_TIMEOUT
            )
            self._abort()

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        self.stats["recv_oct"] += len(data)
        if self._stage == "header":
            self._header += data
            if len(self._header) < len(PROTOCOL_HEADER):
                return
            data, self._header = self._header[len(PROTOCOL_HEADER) :], self._header[: len(PROTOCOL_HEADER)]
            if self._header != PROTOCOL_HEADER:
                self._write(PROTOCOL_HEADER)  # the protocol this server speaks, as the spec asks
                self._abort()
                return
            self._start()
        self._batching = True
        try:
            for kind, channel, payload in self._reader.feed(data):
                self._frame(kind, channel, payload)
                if self._stage == "closed":
                    return
        except FrameError as exc:
            self.close_connection(AmqpFault(501, str(exc)))
        finally:
            self.flush()  # still batching: confirms go after what the batch already holds (returns first)
            self._batching = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stage = "closed"
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        for channel in list(self.channels.values()):
            channel.closed()
        self.channels.clear()
        if self.vhost is not None:
            self.vhost.connection_closed(self)
        self.broker.connections.discard(self)

    def pause_writing(self) -> None:
        self.paused = True
        self._hold("output")

    def resume_writing(self) -> None:
        self.paused = False
        self._release("output")
        for channel in self.channels.values():
            channel.resume()

    # Reading is held for as long as any reason stands: unsent output piling up, the memory alarm.

    def _hold(self, reason: str) -> None:
        if not self._holds and self.transport is not None:
            self.transport.pause_reading()
        self._holds.add(reason)

    def _release(self, reason: str) -> None:
        self._holds.discard(reason)
        if not self._holds and self.transport is not None and not self.transport.is_closing():
            self._last_received = time.monotonic()  # its heartbeats wait, unread, in the socket
            self.transport.resume_reading()

    def block(self) -> None:
        """It publishes while the broker is low on memory: not read from until the alarm clears."""
        if "memory" in self._holds:
            return
        if self._capability("connection.blocked"):
            self.send_method(0, ConnectionMethods.Blocked(reason="low on memory"))
        self._hold("memory")

    def unblock(self) -> None:
        if "memory" not in self._holds:
            return
        if self._capability("connection.blocked"):
            self.send_method(0, ConnectionMethods.Unblocked())
        self._release("memory")

    # Output

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.stats["send_oct"] += len(data)
            self.transport.write(data)

    def send(self, data: bytes) -> None:
        """Frames out: gathered while a batch of input is handled, written at once otherwise."""
        if self._batching:
            self._pending.append(data)
        else:
            self._write(data)

    def flush(self) -> None:
        """Deliveries the batch made ready, its confirms, then everything out in one write, in the order it was
        produced."""
        for vhost in self.broker.vhosts.values():
            vhost.dispatch_now()
        for channel in self.channels.values():
            channel.publishing.flush_confirms()
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            self._write(data)

    def send_method(self, channel: int, method: Method) -> None:
        self.send(encode_method(channel, method))

    def _abort(self) -> None:
        self._stage = "closed"
        if self.transport is not None:
            self.transport.close()

    # Frames

    def _frame(self, kind: int, number: int, payload: bytes) -> None:
        if kind == HEARTBEAT:
            return
        if self._stage == "closing":
            if kind == METHOD and number == 0:
                method = decode_method(payload)
                if isinstance(method, ConnectionMethods.CloseOk | ConnectionMethods.Close):
                    if isinstance(method, ConnectionMethods.Close):
                        self.send_method(0, ConnectionMethods.CloseOk())
                    self.flush()
                    self._abort()
            return  # after Connection.Close, everything but its answer is ignored
        try:
            if number == 0:
                if kind != METHOD:
                    raise AmqpFault(505, f"unexpected frame type {kind} on channel 0")
                self._connection_method(decode_method(payload))
            elif self._stage != "open":
                raise AmqpFault(504, "channel frames before connection.open")
            elif kind == METHOD:
                self._channel_method(number, decode_method(payload))
            elif kind in (HEADER, BODY):
                channel = self.channels.get(number)
                if channel is None:
                    raise AmqpFault(504, f"content on channel {number}, which is not open")
                try:
                    channel.publishing.content(kind, payload)
                except AmqpFault as fault:
                    self._channel_fault(channel, fault, Basic.Publish())
            else:
                raise AmqpFault(501, f"unknown frame type {kind}")
        except AmqpFault as fault:
            self.close_connection(fault)
        except Exception:  # a bug met by one client's frame costs that client its connection, no one else anything
            log.exception("frame on channel %s of %s failed", number, self.name or self.peer_host)
            self.close_connection(AmqpFault(541, "the embedded broker failed on this frame; see its log"))

    def _connection_method(self, method: Method) -> None:
        stage = self._stage
        if isinstance(method, ConnectionMethods.StartOk) and stage == "start-ok":
            self._authenticate(method)
        elif isinstance(method, ConnectionMethods.TuneOk) and stage == "tune-ok":
            self._tuned(method)
        elif isinstance(method, ConnectionMethods.Open) and stage == "open":
            self._open(method)
        elif isinstance(method, ConnectionMethods.UpdateSecret) and stage == "open" and self.vhost is not None:
            # A new secret for the same user (RabbitMQ's way to renew an expiring token); PLAIN has nothing to renew.
            self.send_method(0, ConnectionMethods.UpdateSecretOk())
        elif isinstance(method, ConnectionMethods.Close):
            self._closed_by_client()
        elif isinstance(method, ConnectionMethods.CloseOk):
            self._abort()
        else:
            raise AmqpFault(503, f"unexpected {method.name} during {stage}")

    def _start(self) -> None:
        self._stage = "start-ok"
        properties: common.FieldTable = {
            "product": "amqp-lab embedded broker",
            "version": __version__,
            "platform": "Python",
            "cluster_name": self.broker.cluster_name,
            "information": "Licensed as amqp-lab; for the lab and its tests, not for production",
            "capabilities": CAPABILITIES,
        }
        self.send_method(0, ConnectionMethods.Start(server_properties=properties, mechanisms="PLAIN", locales="en_US"))

    @property
    def cancel_notify(self) -> bool:
        """Whether the client announced consumer_cancel_notify: RabbitMQ sends basic.cancel only to those."""
        return self._capability("consumer_cancel_notify")

    def _capability(self, name: str) -> bool:
        capabilities = self.client_properties.get("capabilities")
        return isinstance(capabilities, dict) and capabilities.get(name) is True

    def _authenticate(self, method: ConnectionMethods.StartOk) -> None:
        self.client_properties = dict(method.client_properties or {})
        self.name = str(self.client_properties.get("connection_name", ""))
        if method.mechanism != "PLAIN":
            raise AmqpFault(403, f"unsupported authentication mechanism '{method.mechanism}': use PLAIN")
        parts = str(method.response or "").split("\x00")
        user, password = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        if not self.broker.authenticate(user, password):
            raise AmqpFault(
                403,
                "Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
            )
        self.user = user
        self._stage = "tune-ok"
        self.send_method(
            0, ConnectionMethods.Tune(channel_max=CHANNEL_MAX, frame_max=FRAME_MAX, heartbeat=HEARTBEAT_SECONDS)
        )

    def _tuned(self, method: ConnectionMethods.TuneOk) -> None:
        if method.frame_max and not FRAME_MIN <= method.frame_max <= FRAME_MAX:
            raise AmqpFault(530, f"frame_max={method.frame_max} outside {FRAME_MIN}..{FRAME_MAX}")
        if method.channel_max > CHANNEL_MAX:  # RabbitMQ refuses more than it offered
            raise AmqpFault(530, f"channel_max={method.channel_max} > {CHANNEL_MAX} max size")
        self.channel_max = method.channel_max or CHANNEL_MAX
        self.frame_max = method.frame_max or FRAME_MAX
        self._reader.frame_max = self.frame_max
        self.heartbeat = method.heartbeat  # the client's value wins, as with RabbitMQ
        self._stage = "open"
        if self.heartbeat:
            self._heartbeat_timer = asyncio.get_running_loop().call_later(self.heartbeat / 2, self._beat)

    def _beat(self) -> None:
        if self._stage == "closed":
            return
        # Missed heartbeats from the client; not counted while it is not read from (RabbitMQ pauses its monitor too).
        if not self._holds and time.monotonic() - self._last_received > 2 * self.heartbeat:
            self._abort()
            return
        self.send(HEARTBEAT_FRAME)
        self._heartbeat_timer = asyncio.get_running_loop().call_later(self.heartbeat / 2, self._beat)

    def _open(self, method: ConnectionMethods.Open) -> None:
        vhost = self.broker.vhosts.get(method.virtual_host)
        if vhost is None:
            raise AmqpFault(530, f"vhost {method.virtual_host} not found")
        self.vhost = vhost
        self._stage = "open-ok"
        self.send_method(0, ConnectionMethods.OpenOk())
        self._stage = "open"

    def _closed_by_client(self) -> None:
        """close-ok, and the socket left for the client to close, as RabbitMQ leaves it (closing it itself only after
        the heartbeat timeout, 30 s at most): a client that sees the socket go before it has read close-ok can take
        its own close for a lost connection (aiormq's test_closing_waiter_cancellation did). What the connection
        held goes at once: its channels, and its exclusive queues, which nothing can use any more."""
        self._stage = "closed"
        for channel in list(self.channels.values()):
            channel.closed()
        self.channels.clear()
        if self.vhost is not None:
            self.vhost.connection_closed(self)
        self.send_method(0, ConnectionMethods.CloseOk())
        self.flush()
        waited = min(self.heartbeat, CLIENT_CLOSE_TIMEOUT) if self.heartbeat else CLIENT_CLOSE_TIMEOUT
        asyncio.get_running_loop().call_later(waited, self._abort)

    def close_connection(self, fault: AmqpFault, method: Method | None = None) -> None:
        """Connection.Close with the fault; the socket closes on CloseOk, or after a while without one."""
        if self._stage in ("closing", "closed"):
            return
        if not fault.closes_connection and fault.code != 403:
            fault = AmqpFault(541, fault.text)
        index = method.index if method is not None else 0
        self.send_method(
            0,
            ConnectionMethods.Close(
                reply_code=fault.code, reply_text=fault.text, class_id=index >> 16, method_id=index & 0xFFFF
            ),
        )
        self._stage = "closing"
        for channel in list(self.channels.values()):
            channel.closed()
        self.channels.clear()
        asyncio.get_running_loop().call_later(CLOSE_OK_TIMEOUT, self._abort)

    def _channel_method(self, number: int, method: Method) -> None:
        channel = self.channels.get(number)
        if isinstance(method, ChannelMethods.Open):
            if channel is not None:
                raise AmqpFault(504, f"second 'channel.open' seen on channel {number}")
            if len(self.channels) >= self.channel_max:  # RabbitMQ limits how many are open, not their numbers
                raise AmqpFault(
                    530,
                    f"number of channels opened ({len(self.channels)}) has reached the negotiated channel_max "
                    f"({self.channel_max})",
                )
            assert self.vhost is not None
            self.channels[number] = Channel(self, number, self.vhost)
            self.send_method(number, ChannelMethods.OpenOk())
            return
        if channel is None:
            raise AmqpFault(504, f"expected 'channel.open' on channel {number}, got {method.name}")
        try:
            channel.method(method)
        except AmqpFault as fault:
            self._channel_fault(channel, fault, method)

    def _channel_fault(self, channel: Channel, fault: AmqpFault, method: Method) -> None:
        if fault.closes_connection:
            self.close_connection(fault, method)
        else:
            channel.fail(fault, method)

    def forget(self, channel: Channel) -> None:
        self.channels.pop(channel.number, None)
