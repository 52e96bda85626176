"""The first screen: the broker's totals, message rates and a live queue table."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from amqp_lab.broker.connection import ConnectionState, ConnectionStatus
from amqp_lab.broker.models import Overview
from amqp_lab.broker.poller import BrokerSnapshot
from amqp_lab.ui.text import inert, rate
from amqp_lab.ui.widgets.queue_table import QueueTable
from amqp_lab.ui.widgets.status_bar import StatusBar

TOTALS = (
    ("connections", "Connections"),
    ("channels", "Channels"),
    ("exchanges", "Exchanges"),
    ("queues", "Queues"),
    ("consumers", "Consumers"),
    ("messages_ready", "Ready"),
    ("messages_unacked", "Unacked"),
)
RATES = (("publish", "Publish/s"), ("deliver", "Deliver/s"), ("ack", "Ack/s"))


class OverviewScreen(Screen[None]):
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "sort", "Sort"),
        Binding("o", "reverse", "Order"),
        Binding("b", "app.builder", "Build & run"),
        Binding("w", "app.workshop", "Workshop"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="totals"):
            for key, label in TOTALS:
                yield Static(f"{label}\n–", id=f"total-{key}", classes="card")
            for key, label in RATES:
                yield Static(f"{label}\n–", id=f"rate-{key}", classes="card -rate")
        yield Static(id="notice")
        yield Input(placeholder="filter queues by name (Enter keeps it, Esc clears)", id="filter")
        yield QueueTable(id="queues")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(QueueTable).focus()
        self.watch(self.app, "settings", self._on_settings)
        self.watch(self.app, "snapshot", self._on_snapshot)
        self.watch(self.app, "amqp_status", self._on_amqp)

    def on_screen_resume(self) -> None:
        # Snapshots keep arriving while another screen is on top; catch up once.
        self._on_snapshot(self.app.snapshot)

    def _on_settings(self, settings: object) -> None:
        self.query_one(StatusBar).settings = settings
        self._show_notice()

    def _on_amqp(self, status: ConnectionStatus | None) -> None:
        self.query_one(StatusBar).amqp = status
        self._show_notice()

    def _on_snapshot(self, snapshot: BrokerSnapshot | None) -> None:
        if snapshot is None or self.app.screen is not self:  # hidden: on_screen_resume catches up
            return
        self.query_one(StatusBar).snapshot = snapshot
        if snapshot.overview is not None:
            self._show_totals(snapshot.overview)
        table = self.query_one(QueueTable)
        wanted = self.query_one("#filter", Input).value.lower()
        table.show(q for q in snapshot.queues if wanted in q.name.lower())
        self._show_notice()

    def _show_totals(self, overview: Overview) -> None:
        with self.app.batch_update():
            for key, label in TOTALS:
                value = getattr(overview, key)
                self.query_one(f"#total-{key}", Static).update(f"{label}\n[b]{value:,}[/b]", layout=False)
            for key, label in RATES:
                value = getattr(overview.rates, key)
                self.query_one(f"#rate-{key}", Static).update(f"{label}\n[b]{rate(value)}[/b]", layout=False)

    def _show_notice(self) -> None:
        """One line that says what is missing, or what the table shows."""
        notice = self.query_one("#notice", Static)
        status: ConnectionStatus | None = self.app.amqp_status
        snapshot: BrokerSnapshot | None = self.app.snapshot
        problems = []
        if status is not None and status.state is ConnectionState.FAILED:
            problems.append(f"AMQP: {status.reason} — press r to retry, c to edit the connection")
        elif status is not None and status.state is ConnectionState.RECONNECTING:
            problems.append(f"AMQP: {status.reason} — reconnecting")
        if snapshot is not None and snapshot.error is not None:
            problems.append(
                f"Management API: {snapshot.error} — AMQP still works; the queue list, totals "
                "and rates need the management API"
            )
        notice.set_class(bool(problems), "-problem")
        if problems:
            notice.update(Text("\n").join(inert(problem) for problem in problems))
            return
        if snapshot is None:
            notice.update("Asking the management API…")
            return
        table = self.query_one(QueueTable)
        refresh = self.app.settings.refresh
        shown = f"{table.row_count:,} queue{'s' if table.row_count != 1 else ''}"
        if snapshot.matching > len(snapshot.queues):
            shown += f" (first {len(snapshot.queues):,} of {snapshot.matching:,}: filter with / to narrow)"
        notice.update(f"{shown} · refreshed every {refresh:g} s · sorted by {table.sort_key}")

    # -- actions -------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.styles.display = "block"
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.styles.display = "none"
        self.query_one(QueueTable).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.app.set_queue_filter(event.value)
        self._on_snapshot(self.app.snapshot)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one(QueueTable).focus()

    def action_sort(self) -> None:
        self.query_one(QueueTable).next_sort()
        self._show_notice()

    def action_reverse(self) -> None:
        table = self.query_one(QueueTable)
        table.sort_by(table.sort_key, reverse=not table.sort_reverse)
