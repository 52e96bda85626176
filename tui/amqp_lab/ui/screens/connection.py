"""Edit or switch the connection without restarting the lab."""

from __future__ import annotations

from dataclasses import fields, replace

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from amqp_lab.config import Settings, SettingsError, build
from amqp_lab.masking import unmask_url
from amqp_lab.ui.text import inert
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter

# The settings the form shows and reads back.
FORM_FIELDS = frozenset(
    {"endpoints", "management_url", "management_fallbacks", "vhost", "tls", "read_only", "broker_given", "profile"}
)


class ConnectionScreen(ModalScreen[Settings | None], StyleKeepingScreen[Settings | None]):
    """A form over Settings; dismisses with the new, validated Settings or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "connect", "Connect")]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        s = self.settings
        # Passwords show as ****; a URL left with **** keeps the password it had.
        urls = ", ".join(e.display(with_vhost=True) for e in s.endpoints)
        with VerticalScroll(id="connection-form"):
            yield Static("Connection", classes="title")
            yield Label("AMQP URL (several nodes of a cluster: separate with commas)")
            yield Input(urls, id="amqp-url", compact=True)
            yield Label("Management API URL (empty: each AMQP host on port 15672, same user; several: commas)")
            yield Input(s.management_urls_display, id="management-url", compact=True)
            yield Label("Virtual host")
            yield Input(s.vhost, id="vhost", compact=True)
            yield Label("CA file, client certificate, client key (for amqps:// and https://)")
            yield Input(str(s.tls.ca_file or ""), id="ca-file", placeholder="CA bundle (PEM)", compact=True)
            yield Input(
                str(s.tls.cert_file or ""), id="cert-file", placeholder="client certificate (PEM)", compact=True
            )
            yield Input(str(s.tls.key_file or ""), id="key-file", placeholder="client key (PEM)", compact=True)
            with Horizontal(classes="switches"):
                yield Checkbox("Verify TLS certificates", s.tls.verify, id="verify")
                yield Checkbox("Read-only", s.read_only, id="read-only")
            yield Static(id="form-error")
            with Horizontal(classes="buttons"):
                yield Button("Connect", variant="primary", id="connect")
                yield Button("Cancel", id="cancel")
            yield Static("ctrl+s connect · Esc cancel · Tab next field · **** keeps the password", classes="hint")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one("#form-error").display = False

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def collect(self) -> Settings:
        """The form's Settings; SettingsError names the field to fix."""
        formed = build(
            {
                "amqp_url": ",".join(
                    unmask_url(url, self.settings.secret_for) for url in self._value("amqp-url").split(",")
                ),
                "management_url": ",".join(
                    unmask_url(url.strip(), self.settings.secret_for)
                    for url in self._value("management-url").split(",")
                )
                or None,
                "vhost": self._value("vhost") or None,
                "ca_file": self._value("ca-file"),
                "cert_file": self._value("cert-file"),
                "key_file": self._value("key-file"),
                "verify": self.query_one("#verify", Checkbox).value,
                "read_only": self.query_one("#read-only", Checkbox).value,
            },
            self.settings.profile,
        )
        # What the form does not show (refresh, timeout, heartbeat, agents, ...) comes from the settings it opened
        # with: pressing Connect with nothing changed changes nothing.
        kept = {f.name: getattr(self.settings, f.name) for f in fields(Settings) if f.name not in FORM_FIELDS}
        return replace(formed, **kept)

    @on(Button.Pressed, "#connect")
    def action_connect(self) -> None:
        try:
            settings = self.collect()
        except SettingsError as exc:
            error = self.query_one("#form-error", Static)
            error.update(inert(str(exc)))
            error.display = True
            return
        self.dismiss(settings)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
