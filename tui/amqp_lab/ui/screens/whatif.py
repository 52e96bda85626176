"""Routing what-if: type a routing key and headers, see which bindings match and which queues would get it."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, Static

from amqp_lab.broker.errors import BrokerError
from amqp_lab.broker.whatif import Answer, Routes, fetch_routes
from amqp_lab.ui.colors import BAD, GOOD
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.text import inert
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter


class HeadersError(ValueError):
    pass


RETRY_AFTER = 3.0  # seconds before the bindings are read again after a failed read


def parse_headers(text: str) -> dict[str, Any]:
    """`tier=vip, x-flag=1` or a JSON object. Bare numbers are integers and true/false booleans, as in AMQP tables."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise HeadersError(f"not a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise HeadersError('a JSON object, please: {"name": value}')
        return value
    headers: dict[str, Any] = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        if not equals or not name.strip():
            raise HeadersError(f"{part.strip()!r}: write name=value, separated by commas")
        value = value.strip()
        parsed: Any = value
        if value in ("true", "false"):
            parsed = value == "true"
        elif value.lstrip("-").isdigit():
            parsed = int(value)
        headers[name.strip()] = parsed
    return headers


def render_answer(routes: Routes, answer: Answer) -> Text:
    text = Text()
    for hop in answer.hops:
        line = Text("exchange ", style="bold")
        line.append_text(inert(hop.exchange or "(default)", "bold"))
        if hop.alternate_of is not None:
            line.append_text(inert(f"  (alternate exchange of {hop.alternate_of}: that one matched nothing)", "italic"))
        text.append_text(line)
        text.append("\n")
        if not hop.matched:
            text.append("  no binding matches\n", style="dim")
        for binding in hop.matched:
            kind = "exchange" if binding.to_exchange else "queue"
            text.append("  ✓ ", style=GOOD)
            shown = binding.routing_key if not binding.arguments else json.dumps(dict(binding.arguments), default=str)
            text.append_text(inert(f"{shown or '(empty key)'} → {kind} {binding.destination}"))
            text.append("\n")
    if routes.unevaluated:
        names = ", ".join(routes.unevaluated)
        text.append_text(inert(f"\nNot evaluated (plugin exchange types the lab does not know): {names}\n", "italic"))
    if answer.unroutable:
        text.append("\nNo queue gets it: ", style=f"bold {BAD}")
        text.append("unroutable. A mandatory publish comes back (312 NO_ROUTE); otherwise it is dropped.")
    else:
        copies = "1 queue gets a copy" if len(answer.queues) == 1 else f"{len(answer.queues)} queues get a copy"
        text.append(f"\n{copies}: ", style="bold")
        text.append_text(inert(", ".join(answer.queues), GOOD))
    return text


class WhatIfScreen(ModalScreen[None], StyleKeepingScreen[None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("ctrl+r", "reload", "Reload bindings")]

    def __init__(self, vhost: str, exchange: str) -> None:
        super().__init__()
        self.vhost = vhost
        self.exchange = exchange
        self.routes: Routes | None = None
        self._retry: Timer | None = None  # the next read after one that failed

    def compose(self) -> ComposeResult:
        with Vertical(id="whatif", classes="dialog"):
            title = Text("Which queues would get a message published to ", style="bold")
            title.append_text(inert(self.exchange or "(default exchange)", "bold"))
            yield Static(title, classes="title")
            yield Input(placeholder="routing key", id="whatif-key")
            yield Input(placeholder="headers: name=value, name2=value2 (or a JSON object)", id="whatif-headers")
            with VerticalScroll(id="whatif-answer-box"):
                yield Static("Reading the bindings…", id="whatif-answer")
            yield Static(
                "Evaluated here with RabbitMQ's rules on the broker's bindings; nothing is published. "
                "ctrl+r reads the bindings again, Esc closes.",
                classes="hint",
            )
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one("#whatif-key", Input).focus()
        self.action_reload()

    @work(exclusive=True, group="whatif", exit_on_error=False)
    async def action_reload(self) -> None:
        if self._retry is not None:
            self._retry.stop()
        try:
            self.routes = await fetch_routes(lab_of(self).management, self.vhost, self.exchange)
        except BrokerError as exc:
            # A busy broker answers late: try again on its own, and say so, rather than wait for ctrl+r.
            self.query_one("#whatif-answer", Static).update(
                inert(f"Could not read the bindings: {exc}. Trying again in {RETRY_AFTER:g} s (ctrl+r: now).")
            )
            self._retry = self.set_timer(RETRY_AFTER, self.action_reload)
            return
        self._evaluate()

    @on(Input.Changed)
    def _evaluate(self) -> None:
        if self.routes is None:
            return
        answer = self.query_one("#whatif-answer", Static)
        try:
            headers = parse_headers(self.query_one("#whatif-headers", Input).value)
        except HeadersError as exc:
            answer.update(inert(f"Headers: {exc}", BAD))
            return
        key = self.query_one("#whatif-key", Input).value
        answer.update(render_answer(self.routes, self.routes.ask(key, headers)))
