"""A TCP proxy on loopback between the lab and the broker that cuts, stalls or slows the traffic on demand.

cut    resets every open connection at once, as a dropped link does; new ones go through
stall  stops forwarding in both directions without closing anything, as a dead route does: only
       heartbeats can tell; connections made meanwhile stall too
slow   holds every chunk `delay` seconds before passing it on
down   resets every open connection and refuses new ones, as an unreachable host does
heal   back to plain forwarding (stalled data then flows)
"""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.delay = 0.0
        self._refusing = False
        self.passed = {"up": 0, "down": 0}  # bytes forwarded to the broker, and back to the client

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def url_for(self, amqp_url: str) -> str:
        """The broker's AMQP URL, through the proxy."""
        return amqp_url.replace(f":{self.upstream[1]}/", f":{self.port}/")

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            client_writer.transport.abort()
            return
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, broker_writer}
        for reader, writer, way in ((client_reader, broker_writer, "up"), (broker_reader, client_writer, "down")):
            pump = asyncio.create_task(self._pump(reader, writer, way))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
        try:
            while True:
                data = await reader.read(65536)
                await self._flowing.wait()  # an end of stream waits too: a stalled route passes nothing
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                self.passed[way] += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def down(self) -> None:
        self._refusing = True
        self.cut()

    def stall(self) -> None:
        self._flowing.clear()

    def slow(self, delay: float) -> None:
        self.delay = delay

    def heal(self) -> None:
        self._refusing = False
        self.delay = 0.0
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.heal()
        self.cut()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
