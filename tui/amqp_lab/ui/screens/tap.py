"""A live tap on an exchange: every message it routes, as it passes, without taking it from anyone."""

from __future__ import annotations

import contextlib
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static

from amqp_lab.broker.errors import BrokerError
from amqp_lab.broker.models import Exchange
from amqp_lab.broker.tap import KEPT, QUEUE_LIMIT, Tap, TappedMessage
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.message_view import MODES, preview, render_message
from amqp_lab.ui.text import inert, printable
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from amqp_lab.ui.widgets.status_bar import StatusBar

DRAW_EVERY = 0.5  # seconds between redraws: a busy exchange never costs one redraw per message
FOLLOW_EVERY = 5.0  # seconds between copies of bindings added to the exchange since the tap started


class TapScreen(StyleKeepingScreen[None]):
    BINDINGS = [
        Binding("escape,s", "stop", "Stop tap"),
        Binding("m", "mode", "Text/JSON/hex"),
        Binding("f", "follow", "Follow newest"),
    ]

    def __init__(self, exchange: Exchange) -> None:
        super().__init__()
        self.exchange = exchange
        self.tap: Tap | None = None  # made on mount: it needs the app's settings
        self.drawn = 0
        self.mode = "auto"
        self.following = True

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Static(id="tap-title")
        table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True, id="tap-messages")
        yield table
        with VerticalScroll(id="tap-detail-box"):
            yield Static("Select a message to see it whole.", id="tap-detail")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one(StatusBar).follow(self)
        table = self.query_one(DataTable)
        for column in ("time", "routing key", "size", "content type", "headers", "payload"):
            table.add_column(column, key=column)
        self.tap = Tap(lab_of(self).settings, self.exchange)
        self._title("starting…")
        self._start()

    def _title(self, state: str) -> None:
        title = Text("Tapping exchange ", style="bold")
        title.append_text(inert(self.exchange.name, "bold"))
        title.append(f" ({self.exchange.type}) · {state}")
        self.query_one("#tap-title", Static).update(title)

    @work(exclusive=True, group="tap", exit_on_error=False)
    async def _start(self) -> None:
        assert self.tap is not None
        try:
            bindings = await lab_of(self).management.bindings_from(self.exchange.vhost, self.exchange.name)
            await self.tap.start(bindings)
        except BrokerError as exc:
            self._title("not started")
            self.query_one("#tap-detail", Static).update(inert(str(exc)))
            return
        self.set_interval(DRAW_EVERY, self._draw)
        self.set_interval(FOLLOW_EVERY, self._follow_bindings)

    def _describe(self) -> str:
        assert self.tap is not None
        keys = len(self.tap.copies)
        if not keys:
            return "the exchange has no bindings, so it routes nothing and the tap sees nothing until one is added"
        return (
            f"{self.tap.seen:,} seen · bound with {keys} binding key{'s' if keys != 1 else ''} "
            "copied from the exchange "
            f"· its own exchange {self.tap.name} and exclusive queue (at most {QUEUE_LIMIT:,} waiting) are "
            f"removed when you stop · last {KEPT} kept"
        )

    def _draw(self) -> None:
        tap = self.tap
        assert tap is not None
        self._title(self._describe())
        table = self.query_one(DataTable)
        new = tap.seen - self.drawn
        if new <= 0:
            return
        messages = list(tap.messages)[-min(new, KEPT) :]
        first = tap.seen - len(messages)
        for offset, message in enumerate(messages):
            table.add_row(*self._cells(message), key=str(first + offset))
        while table.row_count > KEPT:
            table.remove_row(table.coordinate_to_cell_key(Coordinate(0, 0)).row_key)
        self.drawn = tap.seen
        if self.following:
            table.move_cursor(row=table.row_count - 1)

    @work(exclusive=True, group="tap-follow", exit_on_error=False)
    async def _follow_bindings(self) -> None:
        assert self.tap is not None
        with contextlib.suppress(BrokerError):  # the next round tries again; the tap keeps what it has
            await self.tap.follow(await lab_of(self).management.bindings_from(self.exchange.vhost, self.exchange.name))

    @staticmethod
    def _cells(message: TappedMessage) -> tuple[Text, ...]:
        headers = ", ".join(f"{k}={v}" for k, v in message.headers.items())
        return (
            Text(time.strftime("%H:%M:%S", time.localtime(message.seen_at))),
            inert(message.routing_key),
            Text(f"{len(message.body):,}", justify="right"),
            inert(str(message.properties.get("content_type", ""))),
            inert(headers[:40]),
            preview(message.body),
        )

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show()

    def _show(self) -> None:
        table = self.query_one(DataTable)
        tap = self.tap
        if tap is None or not table.row_count:
            return
        index = int(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))
        kept_from = tap.seen - len(tap.messages)
        if index < kept_from:
            return
        message = tap.messages[index - kept_from]
        heading = inert(f"routing key {message.routing_key}")
        heading.append("\n")
        self.query_one("#tap-detail", Static).update(
            render_message(message.properties, message.headers, message.body, len(message.body), self.mode, heading)
        )

    def action_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self._show()

    def action_follow(self) -> None:
        self.following = not self.following
        self.notify("Following the newest message." if self.following else "Stopped following: the cursor stays.")

    async def action_stop(self) -> None:
        if self.tap is not None:
            await self.tap.stop()
            self.notify(
                printable(f"Tap on {self.exchange.name} stopped: its exchange and queue are deleted."),
                title="Tap removed",
            )
        self.dismiss(None)

    async def on_unmount(self) -> None:
        if self.tap is not None:
            await self.tap.stop()  # leaving any other way (quitting) removes it too
