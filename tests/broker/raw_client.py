"""A bare AMQP 0-9-1 client over a socket, for what a library hides: the order of frames on the wire, the
numbers a client asks for at tune, channel numbers of its choice, frames no library would send."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from amqp_lab.embedded.wire import METHOD, PROTOCOL_HEADER, FrameReader, content, decode_method, encode_method
from pamqp.base import Frame as Method
from pamqp.commands import Connection

from tests.conftest import deadline

FRAME_MAX = 131072


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._frames = FrameReader(FRAME_MAX)
        self._methods: list[tuple[int, Method]] = []

    @classmethod
    async def open(cls, port: int, channel_max: int = 0, frame_max: int = FRAME_MAX) -> RawClient:
        """Connected and opened on vhost / as guest, asking for `channel_max` (0: what the broker offers) and
        `frame_max` at tune; it says it understands basic.cancel and connection.blocked, as every library does."""
        client = await cls.tuned(port, channel_max, frame_max)
        await client.expect(Connection.OpenOk)
        return client

    @classmethod
    async def tuned(cls, port: int, channel_max: int = 0, frame_max: int = FRAME_MAX) -> RawClient:
        """As open(), up to connection.open sent, its answer not read."""
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        client.writer.write(PROTOCOL_HEADER)
        await client.expect(Connection.Start)
        properties = {"capabilities": {"consumer_cancel_notify": True, "connection.blocked": True}}
        client.send(0, Connection.StartOk(client_properties=properties, mechanism="PLAIN", response="\0guest\0guest"))
        tune = await client.expect(Connection.Tune)
        client.send(0, Connection.TuneOk(channel_max=channel_max or tune.channel_max, frame_max=frame_max))
        client.send(0, Connection.Open())
        return client

    async def refused(self) -> int | None:
        """The reply code of the Connection.Close the broker sends, or None when it just ends the connection."""
        try:
            close = await self.expect(Connection.Close)
        except ConnectionError:
            return None
        return int(close.reply_code)

    def send(self, channel: int, method: Method) -> None:
        self.writer.write(encode_method(channel, method))

    def publish(self, channel: int, method: Method, header: bytes, body: bytes) -> None:
        self.writer.write(encode_method(channel, method) + content(channel, header, body, FRAME_MAX))

    async def method(self) -> tuple[int, Method]:
        """The next method frame (channel, method); content frames are passed over."""
        while not self._methods:
            data = await asyncio.wait_for(self.reader.read(65536), deadline(10))
            if not data:
                raise ConnectionError("the broker closed the connection")
            self._methods += [(ch, decode_method(p)) for kind, ch, p in self._frames.feed(data) if kind == METHOD]
        return self._methods.pop(0)

    async def expect(self, kind: type[Any]) -> Any:
        _channel, method = await self.method()
        assert isinstance(method, kind), f"expected {kind.__name__}, got {method!r}"
        return method

    async def close(self) -> None:
        """Gone at once, unsent output and all (a test's client may be one the broker stopped reading)."""
        self.writer.transport.abort()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
