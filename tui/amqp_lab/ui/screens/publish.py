"""Publish a test message as a client would: properties, headers, mandatory, and what the broker did with it."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, Switch, TextArea

from amqp_lab.broker.errors import BrokerError
from amqp_lab.broker.send import OutgoingMessage, send
from amqp_lab.ui.colors import BAD, GOOD, WARN
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.screens.whatif import HeadersError, parse_headers
from amqp_lab.ui.text import inert
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter


class PublishScreen(ModalScreen[None], StyleKeepingScreen[None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("ctrl+s", "send", "Publish")]

    def __init__(self, vhost: str, exchange: str, routing_key: str = "") -> None:
        super().__init__()
        self.vhost = vhost
        self.exchange = exchange
        self.routing_key = routing_key

    def compose(self) -> ComposeResult:
        with Vertical(id="publish", classes="dialog"):
            title = Text("Publish a test message to ", style="bold")
            title.append_text(inert(self.exchange or "(default exchange)", "bold"))
            title.append_text(inert(f"  in vhost {self.vhost}"))
            yield Static(title, classes="title")
            yield Input(self.routing_key, placeholder="routing key", id="publish-key")
            yield Input(placeholder="headers: name=value, … (or a JSON object)", id="publish-headers")
            yield Input("application/json", placeholder="content type", id="publish-type")
            yield Input(placeholder="expiration in ms (empty: none)", id="publish-expiration")
            yield TextArea('{"hello": "from amqp-lab"}', id="publish-body")
            with Horizontal(id="publish-switches"):
                yield Switch(True, id="publish-mandatory")
                yield Label("mandatory: the broker returns it if no queue takes it")
                yield Switch(False, id="publish-persistent")
                yield Label("persistent")
            with Horizontal(id="publish-buttons"):
                yield Button("Publish (ctrl+s)", variant="primary", id="publish-send")
                yield Static(id="publish-result")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one("#publish-key", Input).focus()

    @on(Button.Pressed, "#publish-send")
    def _pressed(self) -> None:
        self.action_send()

    def _message(self) -> OutgoingMessage:
        expiration = self.query_one("#publish-expiration", Input).value.strip()
        if expiration and not expiration.isdigit():
            raise HeadersError("expiration: a whole number of milliseconds, or empty")
        return OutgoingMessage(
            exchange=self.exchange,
            routing_key=self.query_one("#publish-key", Input).value,
            body=self.query_one("#publish-body", TextArea).text.encode(),
            headers=parse_headers(self.query_one("#publish-headers", Input).value),
            content_type=self.query_one("#publish-type", Input).value.strip() or None,
            persistent=self.query_one("#publish-persistent", Switch).value,
            expiration_ms=int(expiration) if expiration else None,
            mandatory=self.query_one("#publish-mandatory", Switch).value,
        )

    @work(exclusive=True, group="publish", exit_on_error=False)
    async def action_send(self) -> None:
        result = self.query_one("#publish-result", Static)
        try:
            message = self._message()
        except HeadersError as exc:
            result.update(inert(str(exc), BAD))
            return
        result.update("Publishing…")
        try:
            sent = await send(lab_of(self).settings, self.vhost, message)
        except BrokerError as exc:
            result.update(inert(str(exc), BAD))
            return
        style = GOOD if sent.routed else (WARN if sent.routed is None else BAD)
        result.update(inert(sent.reply, style))
