"""`amqp-lab serve`: the lab in the audience's browsers, through textual-serve.

Each page that connects gets its own lab process: read-only, locked to the broker it was served for, opened on
the live run being broadcast (Esc: the broker explorer). Its settings reach it through its environment, which
only the same user can read, never on a command line. On loopback anyone on this machine may open it; on any
other address the page and its socket need the access token that `serve` prints in the URL.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
import shlex
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web
from textual_serve.server import Server

from amqp_lab.config import Settings

COOKIE = "amqp_lab_token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lab_command(watch: str | None) -> str:
    """The served process: a read-only lab that cannot be switched to another broker or out of read-only."""
    command = [sys.executable, "-m", "amqp_lab", "watch", "--served"]
    return shlex.join([*command, watch] if watch else command)


class LabServer(Server):
    """textual-serve's server, with the access token checked before a page or its socket is served."""

    def __init__(self, command: str, host: str, port: int, public_url: str | None, token: str | None) -> None:
        super().__init__(command, host=host, port=port, title="amqp-lab", public_url=public_url)
        self.token = token
        self._sessions: set[asyncio.Task[object]] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        if self.token is not None:
            app.middlewares.append(self._check_token)
        return app

    @web.middleware
    async def _check_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        assert self.token is not None
        if request.path.startswith("/static/"):
            return await handler(request)  # textual-serve's own scripts and styles
        given = request.query.get("token") or request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise web.HTTPForbidden(text="amqp-lab serve: this page needs the URL with ?token=… that serve printed\n")
        response = await handler(request)
        if request.query.get("token"):  # the page's socket carries no query: the cookie takes the token on
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """A visitor's session: kept, so that stopping the server can end it."""
        session = asyncio.current_task()
        assert session is not None
        self._sessions.add(session)
        try:
            return await super().handle_websocket(request)
        finally:
            self._sessions.discard(session)

    async def on_startup(self, app: web.Application) -> None:
        pass  # serve() says where the lab is, with the token, once

    async def on_shutdown(self, app: web.Application) -> None:
        """Ctrl+C: every visitor's lab is told to quit and awaited, instead of the server waiting for the pages."""
        sessions = list(self._sessions)
        for session in sessions:
            session.cancel()  # textual-serve closes the socket, then stops the lab
        await asyncio.gather(*sessions, return_exceptions=True)


def prepare(settings: Settings, host: str, token: str | None) -> tuple[dict[str, str], str | None]:
    """The environment each served lab gets (read-only, whatever the settings said) and the token to ask for:
    None on loopback, else the one given or a fresh one."""
    environment = replace(settings, read_only=True).environment()
    if is_loopback(host):
        return environment, token
    return environment, token or secrets.token_urlsafe(18)


def serve(
    settings: Settings,
    host: str,
    port: int,
    public_url: str | None,
    token: str | None,
    watch: str | None,
    say: Callable[[str], None],
) -> None:
    environment, token = prepare(settings, host, token)
    os.environ.update(environment)
    named = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host  # a wildcard is no address to give out
    shown_host = f"[{named}]" if ":" in named else named
    url = public_url or f"http://{shown_host}:{port}"
    socket.create_server((host, port)).close()  # a port in use is said now, not after the lab was announced
    server = LabServer(lab_command(watch), host, port, url, token)
    page = f"{url}/?token={token}" if token else f"{url}/"
    say(
        f"amqp-lab serve: the lab on {settings.primary.display()}, read-only, for every browser that opens\n"
        f"  {page}\n"
        + ("  (anyone who can reach this machine: only those with the token get in)\n" if token else "")
        + "Each visitor gets their own lab, opened on the live run; Esc goes to the broker explorer. Ctrl+C stops."
    )
    server.serve()
