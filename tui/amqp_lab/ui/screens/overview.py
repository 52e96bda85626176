"""The first screen, and the explorer: the broker's totals and rates, then its queues, exchanges (with their
bindings), connections, channels and consumers, one tab each, of one vhost or all."""

from __future__ import annotations

import time

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane, Tree

from amqp_lab.broker.connection import ConnectionState, ConnectionStatus
from amqp_lab.broker.errors import BrokerError
from amqp_lab.broker.models import Exchange, Overview
from amqp_lab.broker.poller import BrokerSnapshot
from amqp_lab.broker.tap import refusal
from amqp_lab.config import Settings
from amqp_lab.ui.colors import WARN
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.read_only import refuse_in_read_only
from amqp_lab.ui.screens.confirm import ConfirmScreen
from amqp_lab.ui.screens.publish import PublishScreen
from amqp_lab.ui.screens.queue import open_queue
from amqp_lab.ui.screens.tap import TapScreen
from amqp_lab.ui.screens.vhosts import EVERY_VHOST, VhostScreen
from amqp_lab.ui.screens.whatif import WhatIfScreen
from amqp_lab.ui.text import inert, printable, rate
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.exchange_tree import ExchangeTree
from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from amqp_lab.ui.widgets.keyed_table import KeyedTable
from amqp_lab.ui.widgets.listings import (
    CHANNEL_COLUMNS,
    CONNECTION_COLUMNS,
    CONSUMER_COLUMNS,
    channel_row,
    connection_row,
    consumer_key,
    consumer_row,
)
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
# Tab id, its title, and the listings the poller fetches while it shows (the queue table is always fetched).
TABS = (
    ("queues", "1 Queues", ()),
    ("exchanges", "2 Exchanges", ("exchanges",)),
    ("connections", "3 Connections", ("connections",)),
    ("channels", "4 Channels", ("channels",)),
    ("consumers", "5 Consumers", ("consumers", "channels")),  # a consumer's unacked and acks are its channel's
)
CHANGES = {"tap", "publish", "delete_exchange"}
NARROW = 130  # columns under which the ten tiles take two rows


def in_view(snapshot: BrokerSnapshot, vhost: str) -> bool:
    """Connections and channels are listed for every vhost: keep those of the vhost on screen."""
    return snapshot.vhost in (None, vhost)


class ExchangeActions(ExchangeTree):
    """The exchange tree, with the keys that act on the exchange under the cursor."""

    BINDINGS = [
        Binding("t", "screen.tap", "Tap"),
        Binding("k", "screen.what_if", "Route what-if"),
        Binding("p", "screen.publish", "Publish"),
        Binding("D", "screen.delete_exchange", "Delete"),
    ]

    def on_key(self, event: events.Key) -> None:
        refuse_in_read_only(self, self.BINDINGS, CHANGES, event)


class OverviewScreen(StyleKeepingScreen[None]):
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "sort", "Sort"),
        Binding("o", "reverse", "Order"),
        Binding("v", "vhost", "Vhost"),
        Binding("b", "app.builder", "Build & run"),
        Binding("w", "app.workshop", "Workshop"),
        Binding("W", "app.watch", "Watch a run", tooltip="Follow a live run someone started on this broker"),
        *(Binding(str(n), f"tab('{tab}')", title, show=False) for n, (tab, title, _) in enumerate(TABS, 1)),
    ]

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]  # Textual sets the class as the width changes

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="totals"):
            for key, label in TOTALS:
                yield Static(f"{label}\n–", id=f"total-{key}", classes="card")
            for key, label in RATES:
                yield Static(f"{label}\n–", id=f"rate-{key}", classes="card -rate")
        yield Static(id="notice")
        with TabbedContent(id="tabs"):
            with TabPane(TABS[0][1], id="queues"):
                yield Input(placeholder="filter queues by name (Enter keeps it, Esc clears)", id="filter")
                yield QueueTable(id="queue-table")
            with TabPane(TABS[1][1], id="exchanges"):
                yield ExchangeActions(id="exchange-tree")
            with TabPane(TABS[2][1], id="connections"):
                yield KeyedTable(
                    CONNECTION_COLUMNS,
                    giving=("connection", "client's name", "user"),
                    folding=("vhost", "state", "TLS"),
                    narrow=100,
                    id="connection-table",
                )
            with TabPane(TABS[3][1], id="channels"):
                yield KeyedTable(CHANNEL_COLUMNS, giving=("channel",), id="channel-table")
            with TabPane(TABS[4][1], id="consumers"):
                yield KeyedTable(
                    CONSUMER_COLUMNS,
                    giving=("channel", "queue", "consumer"),
                    folding=("vhost", "active"),
                    narrow=100,
                    id="consumer-table",
                )
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one(QueueTable).focus()
        self._watch_tab()
        self.watch(self.app, "settings", self._on_settings)
        self.watch(self.app, "snapshot", self._on_snapshot)
        self.watch(self.app, "amqp_status", self._on_amqp)

    def on_screen_resume(self) -> None:
        # Snapshots keep arriving while another screen is on top; catch up once.
        self._watch_tab()
        self._on_snapshot(lab_of(self).snapshot)

    def on_screen_suspend(self) -> None:
        lab_of(self).want(listings=frozenset())  # nothing of this screen shows: fetch only what others need

    @property
    def tab(self) -> str:
        return self.query_one(TabbedContent).active or "queues"

    def _watch_tab(self) -> None:
        listings = {tab: listings for tab, _, listings in TABS}[self.tab]
        lab_of(self).want(listings=frozenset(listings))

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self._watch_tab()
        self._focus_tab()
        self._on_snapshot(lab_of(self).snapshot)
        self.refresh_bindings()

    def _focus_tab(self) -> None:
        pane = self.query_one(f"#{self.tab}", TabPane)
        for widget in pane.query("DataTable, Tree"):
            widget.focus()
            return

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def _on_settings(self, settings: Settings) -> None:
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
        if snapshot.exchanges is not None:
            tree = self.query_one(ExchangeTree)
            tree.show(snapshot.exchanges)
            tree.show_destinations({q.key: q for q in snapshot.queues})
        if snapshot.connections is not None:
            rows = {c.name: connection_row(c) for c in snapshot.connections if in_view(snapshot, c.vhost)}
            self.query_one("#connection-table", KeyedTable).show(rows)
        if snapshot.channels is not None:
            rows = {c.name: channel_row(c) for c in snapshot.channels if in_view(snapshot, c.vhost)}
            self.query_one("#channel-table", KeyedTable).show(rows)
        if snapshot.consumers is not None:
            channels = {c.name: c for c in snapshot.channels or ()}
            rows = {consumer_key(c): consumer_row(c, channels.get(c.channel)) for c in snapshot.consumers}
            self.query_one("#consumer-table", KeyedTable).show(rows)
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
        status: ConnectionStatus | None = lab_of(self).amqp_status
        snapshot: BrokerSnapshot | None = lab_of(self).snapshot
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
        notice.update(self._describe(snapshot))

    def _describe(self, snapshot: BrokerSnapshot) -> Text:
        """What the current tab shows, of which vhost, and how fresh it is."""
        vhost = "every vhost" if snapshot.vhost is None else f"vhost {snapshot.vhost}"
        if self.tab == "queues":
            table = self.query_one(QueueTable)
            shown = f"{table.row_count:,} queue{'s' if table.row_count != 1 else ''}"
            fetched, matching = len(snapshot.queues), snapshot.matching
            if snapshot.in_broker_order:
                shown += (
                    f" (the broker's first {fetched:,} of {matching:,}, unsorted: the {table.sort_key} order follows)"
                )
            elif matching > fetched:
                order = "highest" if table.sort_reverse else "lowest"
                shown += f" (the {fetched:,} of {matching:,} with the {order} {table.sort_key}: / narrows)"
            else:
                shown += f" · sorted by {table.sort_key}"
            shown += " · Enter: details, peek, purge"
        elif self.tab == "exchanges":
            shown = "Enter: bindings · t tap · k which queues a routing key reaches · p publish · D delete"
        else:
            shown = f"{self.tab} of the broker"
        line = inert(f"{shown} · {vhost} (v changes) · every {lab_of(self).settings.refresh:g} s")
        if snapshot.slowed_to is not None:
            took, wait = snapshot.answered_in, snapshot.slowed_to
            line.append(f" · management API slow (answered in {took:.1f} s): next look in {wait:.0f} s", style=WARN)
        stale = time.monotonic() - snapshot.fresh_at if snapshot.fresh_at is not None else 0.0
        if stale > 2 * lab_of(self).settings.refresh + snapshot.answered_in:
            line.append(f" · figures from {stale:.0f} s ago", style=WARN)
        if lab_of(self).settings.read_only:
            line.append(" · READ-ONLY: tap, publish, purge and delete are off", style="bold")
        return line

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
        lab_of(self).want(name_filter=event.value)
        self._on_snapshot(lab_of(self).snapshot)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one(QueueTable).focus()

    def action_sort(self) -> None:
        self.query_one(QueueTable).next_sort()
        self._show_notice()

    def action_reverse(self) -> None:
        table = self.query_one(QueueTable)
        table.sort_by(table.sort_key, reverse=not table.sort_reverse)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CHANGES and lab_of(self).settings.read_only:
            return None  # dimmed in the footer
        if action in ("filter", "sort", "reverse"):
            return self.tab == "queues"
        return True

    # -- the explorer ------------------------------------------------------------

    @on(QueueTable.Sorted)
    def _sorted(self, event: QueueTable.Sorted) -> None:
        lab_of(self).want(sort=(event.api_field, event.reverse))

    @on(DataTable.RowSelected, "#queue-table")
    def _queue_chosen(self, event: DataTable.RowSelected) -> None:
        vhost, _, name = str(event.row_key.value).partition("\x00")
        self.run_worker(open_queue(self, vhost, name), group="open-queue", exclusive=True)

    @on(Tree.NodeExpanded, "#exchange-tree")
    def _exchange_expanded(self, event: Tree.NodeExpanded[object]) -> None:
        exchange = getattr(event.node.data, "exchange", None)
        if exchange is not None:
            self._load_bindings(exchange)

    @work(group="bindings", exit_on_error=False)
    async def _load_bindings(self, exchange: Exchange) -> None:
        tree = self.query_one(ExchangeTree)
        try:
            bindings = (
                []
                if exchange.name == ""
                else await lab_of(self).management.bindings_from(exchange.vhost, exchange.name)
            )
        except BrokerError as exc:
            self.notify(printable(str(exc)), title="Bindings", severity="error")
            return
        snapshot = lab_of(self).snapshot
        queues = {q.key: q for q in snapshot.queues} if snapshot else {}
        tree.show_bindings(exchange, bindings, queues)

    def _exchange(self) -> Exchange | None:
        exchange = self.query_one(ExchangeTree).selected
        if exchange is None:
            self.notify("Select an exchange first (tab 2).", severity="warning")
        return exchange

    def action_tap(self) -> None:
        exchange = self._exchange()
        if exchange is None:
            return
        reason = refusal(exchange)
        if reason is not None:
            self.notify(printable(reason), title="Cannot tap", severity="warning", timeout=12)
            return
        self.app.push_screen(TapScreen(exchange))

    def action_what_if(self) -> None:
        exchange = self._exchange()
        if exchange is not None:
            self.app.push_screen(WhatIfScreen(exchange.vhost, exchange.name))

    def action_publish(self) -> None:
        exchange = self._exchange()
        if exchange is not None:
            self.app.push_screen(PublishScreen(exchange.vhost, exchange.name))

    def action_delete_exchange(self) -> None:
        exchange = self._exchange()
        if exchange is None:
            return
        if exchange.name == "" or exchange.name.startswith("amq."):
            self.notify("RabbitMQ's own exchanges (the default and amq.*) cannot be deleted.", severity="warning")
            return
        consequence = "Its bindings go with it; publishers that use it get 404 NOT_FOUND and their channel is closed."

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete_exchange(exchange)

        self.app.push_screen(ConfirmScreen("Delete", "exchange", exchange.name, exchange.vhost, consequence), answered)

    @work(group="exchange-change", exit_on_error=False)
    async def _delete_exchange(self, exchange: Exchange) -> None:
        try:
            await lab_of(self).management.delete_exchange(exchange.vhost, exchange.name)
        except BrokerError as exc:
            self.notify(printable(str(exc)), title="Could not delete", severity="error")
            return
        self.notify(printable(f"Deleted exchange {exchange.name}."), title="Done")
        poller = lab_of(self).poller
        if poller is not None:
            poller.refresh_now()

    def action_vhost(self) -> None:
        def chosen(vhost: str | None) -> None:
            if vhost is not None:
                lab_of(self).want(vhost=None if vhost == EVERY_VHOST else vhost)

        self.app.push_screen(VhostScreen(), chosen)
