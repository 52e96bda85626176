"""The top bar: which broker, which version, and the state of both connections."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static

from amqp_lab.broker.connection import ConnectionState, ConnectionStatus
from amqp_lab.broker.models import NodeStatus, node_labels
from amqp_lab.broker.poller import BrokerSnapshot
from amqp_lab.config import Settings
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.text import inert

BADGE_CLASSES = {
    ConnectionState.CONNECTED: "-ok",
    ConnectionState.CONNECTING: "-busy",
    ConnectionState.RECONNECTING: "-busy",
    ConnectionState.FAILED: "-bad",
    ConnectionState.CLOSED: "-bad",
}


def cluster_badge(cluster_name: str, nodes: Sequence[NodeStatus] | None) -> tuple[str, str] | None:
    """The cluster badge's label and class: shown for a cluster, or for a lone node in trouble."""
    if not nodes:
        return None
    troubled = [node for node in nodes if node.state != "running"]
    if len(nodes) == 1 and not troubled:
        return None
    running = sum(node.running for node in nodes)
    shown = node_labels([node.name for node in nodes])
    label = f"cluster {cluster_name} ● {running}/{len(nodes)} up" if len(nodes) > 1 else f"node {shown[nodes[0].name]}"
    if troubled:
        label += ": " + ", ".join(f"{shown[node.name]} {node.state}" for node in troubled)
    alarmed = any(node.running and node.state != "running" for node in nodes)
    return label, "-bad" if alarmed or not running else "-busy" if troubled else "-ok"


PARTS = 6  # what StatusBar.compose yields


class StatusBar(Horizontal):
    settings: reactive[Settings | None] = reactive(None, init=False)
    amqp: reactive[ConnectionStatus | None] = reactive(None, init=False)
    snapshot: reactive[BrokerSnapshot | None] = reactive(None, init=False)

    def compose(self) -> ComposeResult:
        yield Static("amqp-lab", id="brand")
        yield Static(id="broker")
        yield Static(id="amqp-badge", classes="badge")
        yield Static(id="cluster-badge", classes="badge")
        yield Static(id="management-badge", classes="badge")
        yield Static("READ-ONLY", id="read-only-badge", classes="badge -warn")

    def follow(self, screen: Screen[Any]) -> None:
        """Show the app's settings and connection states for as long as `screen` lives."""
        self.settings = lab_of(screen).settings
        screen.watch(screen.app, "amqp_status", lambda value: setattr(self, "amqp", value))
        screen.watch(screen.app, "snapshot", lambda value: setattr(self, "snapshot", value))

    def on_mount(self) -> None:
        # Reconnecting shows the time elapsed; one cheap tick a second keeps it current.
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.amqp is not None and not self._taken_down() and self.amqp.state is ConnectionState.RECONNECTING:
            self._show_amqp()

    def _taken_down(self) -> bool:
        """Its screen is going: Textual removes the bar's parts first, and a snapshot that came then raised in
        the management poller, which stopped polling for good."""
        return len(self.children) < PARTS

    def watch_settings(self) -> None:
        if self._taken_down():
            return
        self._show_broker()
        self.query_one("#read-only-badge").display = bool(self.settings and self.settings.read_only)

    def watch_snapshot(self) -> None:
        if self._taken_down():
            return
        self._show_broker()
        badge = self.query_one("#management-badge", Static)
        snapshot = self.snapshot
        badge.set_classes("badge " + ("-ok" if snapshot and snapshot.ok else "-bad"))
        label = "management ● ok" if snapshot and snapshot.ok else "management ● unreachable"
        if label != str(badge.content):
            badge.update(label)
        self._show_cluster()

    def _show_cluster(self) -> None:
        badge = self.query_one("#cluster-badge", Static)
        snapshot = self.snapshot
        shown = None
        if snapshot is not None and snapshot.ok and snapshot.overview is not None:
            shown = cluster_badge(snapshot.overview.cluster_name, snapshot.nodes)
        badge.display = shown is not None
        if shown is not None:
            label, kind = shown
            badge.set_classes("badge " + kind)
            if label != str(badge.content):
                badge.update(inert(label))

    def watch_amqp(self) -> None:
        if not self._taken_down():
            self._show_amqp()

    def _show_broker(self) -> None:
        if self.settings is None:
            return
        # Version and vhost first: on a narrow terminal the address gives way (it ends in an ellipsis).
        line = Text()
        overview = self.snapshot.overview if self.snapshot else None
        if overview is not None:
            line.append(f"{overview.product} {overview.version}  ", style="bold")
        line.append(f"vhost {self.settings.vhost}  ")
        if self.settings.profile:
            line.append(f"profile {self.settings.profile}  ")
        line.append_text(inert(self.settings.primary.display()))
        self.query_one("#broker", Static).update(line, layout=False)  # 1fr wide: its size never depends on it

    def _show_amqp(self) -> None:
        status = self.amqp
        if status is None:
            return
        badge = self.query_one("#amqp-badge", Static)
        badge.set_classes("badge " + BADGE_CLASSES[status.state])
        label = f"AMQP ● {status.state.value}"
        if status.down_since is not None:
            label += f" {time.monotonic() - status.down_since:.0f}s"
            if status.attempt:
                label += f" (try {status.attempt})"
        badge.update(label)
