"""Peek at a queue's messages through the management API, saying plainly what that does to them."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from amqp_lab.broker.errors import BrokerError
from amqp_lab.broker.models import PeekedMessage
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.message_view import MODES, preview, render_message
from amqp_lab.ui.text import inert
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter

PEEK_COUNT = 20
WARNING = (
    "Peeking takes each message and gives it straight back (ackmode ack_requeue_true): it returns to the "
    "queue marked redelivered, and a consumer may receive it meanwhile. Exclusive queues cannot be peeked."
)


class PeekScreen(ModalScreen[None], StyleKeepingScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("m", "mode", "Text/JSON/hex"),
        Binding("g", "peek", "Peek again"),
    ]

    def __init__(self, vhost: str, queue: str) -> None:
        super().__init__()
        self.vhost = vhost
        self.queue = queue
        self.messages: list[PeekedMessage] = []
        self.mode = "auto"

    def compose(self) -> ComposeResult:
        with Vertical(id="peek", classes="dialog"):
            title = Text("Peek at ", style="bold")
            title.append_text(inert(self.queue, "bold"))
            yield Static(title, classes="title")
            yield Static(WARNING, id="peek-warning")
            with Horizontal(id="peek-body"):
                yield OptionList(id="peek-list")
                with VerticalScroll(id="peek-detail-box"):
                    yield Static(id="peek-detail")
            yield Static(id="peek-status", classes="hint")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.action_peek()

    @work(exclusive=True, group="peek", exit_on_error=False)
    async def action_peek(self) -> None:
        status = self.query_one("#peek-status", Static)
        status.update("Peeking…")
        try:
            self.messages = await lab_of(self).management.peek(self.vhost, self.queue, PEEK_COUNT)
        except BrokerError as exc:
            status.update(inert(str(exc)))
            return
        options = self.query_one(OptionList)
        options.clear_options()
        for n, message in enumerate(self.messages):
            label = Text(f"{n + 1:>3} ", style="bold")
            label.append_text(inert(message.routing_key or "(no key)"))
            label.append(f"  {message.size:,} B" + ("  redelivered" if message.redelivered else ""), style="dim")
            label.append("\n    ")
            label.append_text(preview(message.payload, 40))
            options.add_option(Option(label, id=str(n)))
        if self.messages:
            options.highlighted = 0
            remaining = self.messages[-1].remaining
            status.update(
                f"{len(self.messages)} message{'s' if len(self.messages) != 1 else ''} (the first {PEEK_COUNT} at most)"
                f", {remaining:,} more behind them · m: text/JSON/hex · g: peek again · Esc: close"
            )
        else:
            self.query_one("#peek-detail", Static).update("")
            status.update("The queue has no ready messages (unacked ones are with their consumers).")

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        self._show()

    def _show(self) -> None:
        index = self.query_one(OptionList).highlighted
        if index is None or index >= len(self.messages):
            return
        message = self.messages[index]
        meta = Text()
        meta.append_text(inert(f"exchange {message.exchange or '(default)'} · routing key {message.routing_key}"))
        meta.append(f" · redelivered {'yes' if message.redelivered else 'no'}\n")
        view = render_message(message.properties, message.headers, message.payload, message.size, self.mode, meta)
        self.query_one("#peek-detail", Static).update(view)

    def action_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self._show()
