"""One queue up close: depth and rates over time, its consumers and whether they keep up, its settings and bindings."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from amqp_lab.broker.consumer_health import ConsumerHealth, ProgressWatch
from amqp_lab.broker.errors import BrokerError, ManagementObjectGone
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.models import Binding as BrokerBinding
from amqp_lab.broker.models import ChannelActivity, QueueDetail
from amqp_lab.broker.queue_settings import Setting, consumer_timeout_ms, effective_settings
from amqp_lab.broker.queue_watch import CONSUMERS_SHOWN, QueueLook, QueueWatch
from amqp_lab.ui.colors import BAD, GOOD, WARN
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.read_only import refuse_in_read_only
from amqp_lab.ui.screens.confirm import ConfirmScreen
from amqp_lab.ui.screens.peek import PeekScreen
from amqp_lab.ui.screens.publish import PublishScreen
from amqp_lab.ui.text import inert, printable, rate
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from amqp_lab.ui.widgets.keyed_table import KeyedTable
from amqp_lab.ui.widgets.listings import prefetch_cell
from amqp_lab.ui.widgets.status_bar import StatusBar
from amqp_lab.ui.widgets.trends import Trend

SERIES = (
    ("ready", "ready"),
    ("unacked", "unacked"),
    ("publish", "publish/s"),
    ("deliver", "deliver/s"),
    ("ack", "ack/s"),
)
HISTORY = 120  # points per series: two minutes at RabbitMQ's finest statistics interval
CONSUMER_COLUMNS = ("consumer", "health", "prefetch", "unacked", "ack/s", "acks", "channel")


NARROW = 120  # columns under which the queue's facts go above its figures
ASKING = "Asking the management API…"
KEPT = "queue"  # the installed queue screen's name
# How long Enter waits for a queue's first look: an answer this quick comes up with the screen, in one frame; a
# slower management API gets the screen at once, saying it is asking.
FIRST_LOOK_WAIT = 0.1


def stuck_after(refresh: float) -> float:
    """How long unacked messages may sit without an ack before the consumer is called stuck."""
    return max(3 * refresh, 5.0)


def trend_span(refresh: float) -> str:
    """How far back the trends reach when every look comes on time (a slow management API spaces them out)."""
    seconds = HISTORY * refresh
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def channel_label(name: str) -> str:
    """RabbitMQ names channels "client -> broker (n)"; the client side and the number tell them apart."""
    client, arrow, rest = name.partition(" -> ")
    number = rest[rest.rfind(" (") :] if arrow and rest.endswith(")") else ""
    return client + number if arrow else name


def consumer_cells(health: ConsumerHealth) -> tuple[Text, ...]:
    consumer, activity = health.consumer, health.activity
    if activity is None:
        unacked, ack_rate = Text("?", style="dim"), Text("?", style="dim")
    else:
        full = consumer.prefetch and activity.unacked >= consumer.prefetch * max(activity.consumers, 1)
        unacked = Text(f"{activity.unacked:,}", style=WARN if full else "", justify="right")
        ack_rate = Text(rate(activity.ack_rate), justify="right")
        if activity.consumers > 1:
            unacked.append(f" (channel, {activity.consumers} consumers)", style="dim")
    flags = health.flags
    return (
        inert(shorten(consumer.consumer_tag, 24)),
        Text(", ".join(flags), style=BAD) if flags else Text("ok", style=GOOD),
        prefetch_cell(consumer.prefetch),
        unacked,
        ack_rate,
        Text("manual" if consumer.ack_required else "auto (no ack)"),
        inert(channel_label(consumer.channel)),
    )


class QueueScreen(StyleKeepingScreen[None]):
    """Built once and kept (see `open_queue`): composing and laying out a new one added 100 ms and more to Enter."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("g", "peek", "Peek"),
        Binding("p", "publish", "Publish"),
        Binding("P", "purge", "Purge"),
        Binding("D", "delete", "Delete"),
    ]
    CHANGES = {"peek", "publish", "purge", "delete"}

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW, "-wide")]  # Textual sets the class as the width changes

    def __init__(self, vhost: str, name: str, first: FirstLook | None = None) -> None:
        super().__init__()
        self._forget(vhost, name, first)

    def _forget(self, vhost: str, name: str, first: FirstLook | None) -> None:
        """Start over on a queue: nothing of the one shown before stays, not a figure nor a point of a trend."""
        self.vhost = vhost
        self.queue_name = name
        self.queue_watch = first.watch if first else None
        self.first_look = first.look if first else None
        self.series: dict[str, deque[float]] = {key: deque(maxlen=HISTORY) for key, _ in SERIES}
        self.detail: QueueDetail | None = None
        self.bound_by: list[BrokerBinding] = []
        self.fresh_at: float | None = None
        self.watch_progress = ProgressWatch(stuck_after(lab_of(self).settings.refresh))

    def show_queue(self, vhost: str, name: str, first: FirstLook | None = None) -> None:
        """The kept screen, on another queue (or the same one again, anew): its parts emptied, a new poll begun."""
        self._forget(vhost, name, first)
        if not self.is_mounted:
            return  # composed from the fields above when first shown
        self.query_one("#queue-title", Static).update(inert(f"queue {name}"))
        self.query_one("#queue-settings", Static).update(ASKING)
        self.query_one("#queue-bindings", Static).update("")
        for trend in self.query(Trend):
            trend.show([])
        self.query_one(KeyedTable).show({})
        self._notice(Text(""))
        self._poll()

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Static(inert(f"queue {self.queue_name}"), id="queue-title")
        with Horizontal(id="queue-body"):
            with VerticalScroll(id="queue-facts"):
                yield Static(ASKING, id="queue-settings")
                yield Static(id="queue-bindings")
            with Vertical(id="queue-live"):
                with Vertical(id="queue-trends"):
                    for key, label in SERIES:
                        yield Trend(key, label, HISTORY)
                yield KeyedTable(
                    CONSUMER_COLUMNS, giving=("consumer", "channel"), folding=("acks",), narrow=70, id="queue-consumers"
                )
        yield Static(id="queue-notice")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one(StatusBar).follow(self)
        self.query_one(KeyedTable).focus()
        self._poll()

    def on_screen_suspend(self) -> None:
        if not self._shown():  # left, not covered by a dialog of its own: no look waits out its interval
            self.workers.cancel_group(self, "queue-detail")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.CHANGES and lab_of(self).settings.read_only:
            return None  # shown dimmed in the footer: read-only mode
        return True

    def on_key(self, event: events.Key) -> None:
        refuse_in_read_only(self, self.BINDINGS, self.CHANGES, event)

    # -- polling ---------------------------------------------------------------

    @work(exclusive=True, group="queue-detail", exit_on_error=False)
    async def _poll(self) -> None:
        while self._shown():
            started = time.monotonic()
            first, self.first_look = self.first_look, None
            try:
                look = await (first or self._watch().look())
            except ManagementObjectGone as exc:
                self._notice(inert(f"{exc}. Esc goes back.", BAD))
                return
            except BrokerError as exc:
                if not self._shown():
                    return
                self._notice(inert(f"{exc} — showing figures from {self._age()}; trying again", BAD))
            else:
                if not self._shown():  # the user left while the answer was on its way
                    return
                self.fresh_at = time.monotonic()
                self.bound_by = look.bound_by
                self._show(look.detail, look.activity)
            poller = lab_of(self).poller
            wait = poller.next_wait(time.monotonic() - started) if poller else lab_of(self).settings.refresh
            if wait > lab_of(self).settings.refresh:
                self._notice(inert(f"management API slow: next look in {wait:.0f} s", WARN))
            await asyncio.sleep(wait)

    def _watch(self) -> QueueWatch:
        if self.queue_watch is None:
            self.queue_watch = QueueWatch(lab_of(self).management, self.vhost, self.queue_name)
        return self.queue_watch

    def _shown(self) -> bool:
        """On screen, or under a dialog of its own: kept after Esc, it stops polling then."""
        return self in self.app.screen_stack

    def _age(self) -> str:
        if self.fresh_at is None:
            return "nowhere yet"
        return f"{time.monotonic() - self.fresh_at:.0f} s ago"

    def _notice(self, text: Text) -> None:
        self.query_one("#queue-notice", Static).update(text)

    def _show(self, detail: QueueDetail, activity: dict[str, ChannelActivity]) -> None:
        self.detail = detail
        stats = detail.stats
        values = {
            "ready": stats.ready,
            "unacked": stats.unacked,
            "publish": stats.rates.publish,
            "deliver": stats.rates.deliver,
            "ack": stats.rates.ack,
        }
        for trend in self.query(Trend):
            series = self.series[trend.series_name]
            series.append(float(values[trend.series_name]))
            trend.show(list(series))
        settings = effective_settings(detail)
        timeout_ms, timeout_source = consumer_timeout_ms(settings)
        health = self.watch_progress.judge(detail.consumers, activity, timeout_ms / 1000, time.monotonic())
        self.query_one(KeyedTable).show({h.consumer.consumer_tag: consumer_cells(h) for h in health})
        self.query_one("#queue-title", Static).update(self._title(detail))
        self.query_one("#queue-settings", Static).update(self._settings(detail, settings, timeout_ms, timeout_source))
        self.query_one("#queue-bindings", Static).update(self._bindings_text())
        refresh = lab_of(self).settings.refresh
        note = f"refreshed every {refresh:g} s · trends over the last {trend_span(refresh)} ({HISTORY} looks)"
        if len(detail.consumers) > CONSUMERS_SHOWN:
            note += f" · progress of the first {CONSUMERS_SHOWN} consumers' channels"
        if lab_of(self).settings.read_only:
            note += " · READ-ONLY: peek, publish, purge and delete are off"
        self._notice(Text(note, style="dim"))

    def _title(self, detail: QueueDetail) -> Text:
        stats = detail.stats
        title = Text("queue ", style="bold")
        title.append_text(inert(stats.name, "bold"))
        flags = [stats.type, stats.state]
        flags += [
            f
            for f, on in (
                ("durable", detail.durable),
                ("exclusive", detail.exclusive),
                ("auto-delete", detail.auto_delete),
            )
            if on
        ]
        title.append_text(inert(f" · vhost {stats.vhost} · {' · '.join(flags)} · node {detail.node}"))
        title.append(f"\n{stats.ready:,} ready · {stats.unacked:,} unacked · {stats.consumers} consumers", style="bold")
        title.append(
            f" · in {rate(stats.rates.publish)}/s · out {rate(stats.rates.deliver)}/s · acked {rate(stats.rates.ack)}/s"
        )
        return title

    def _settings(self, detail: QueueDetail, settings: list[Setting], timeout_ms: float, timeout_source: str) -> Text:
        text = Text("What applies to its messages\n", style="bold")
        if not any(s.label != "consumer timeout" for s in settings):
            text.append("  no TTL, length limit or dead-lettering\n", style="dim")
        for setting in settings:
            text.append_text(inert(f"  {setting.label}: {setting.value}", "bold"))
            text.append_text(inert(f" · from {setting.source}", "italic"))
            text.append("\n    ")
            text.append_text(inert(setting.meaning, "dim"))
            text.append("\n")
        if not any(s.label == "consumer timeout" for s in settings):
            text.append_text(inert(f"  consumer timeout: {timeout_ms / 60000:g} min, {timeout_source}", "dim"))
            text.append("\n")
        text.append("\nArguments\n", style="bold")
        if not detail.arguments:
            text.append("  none\n", style="dim")
        for name, value in sorted(detail.arguments.items()):
            text.append_text(inert(f"  {name} = {value!r}"))
            text.append("\n")
        policies = [p for p in (detail.policy, detail.operator_policy) if p]
        text.append("\nPolicy\n", style="bold")
        text.append_text(inert("  " + (" + ".join(policies) if policies else "none")))
        text.append("\n")
        return text

    def _bindings_text(self) -> Text:
        text = Text("\nBindings (what routes messages here)\n", style="bold")
        for binding in self.bound_by:
            source = binding.source or "(default exchange)"
            key = binding.routing_key if not binding.arguments else repr(dict(binding.arguments))
            text.append_text(inert(f"  {source} → key {key or '(empty)'}"))
            text.append("\n")
        return text

    # -- actions ---------------------------------------------------------------

    def action_peek(self) -> None:
        self.app.push_screen(PeekScreen(self.vhost, self.queue_name))

    def action_publish(self) -> None:
        self.app.push_screen(PublishScreen(self.vhost, "", self.queue_name))

    def action_purge(self) -> None:
        ready = self.detail.stats.ready if self.detail else 0
        self._confirm(
            "Purge", f"Its {ready:,} ready messages are deleted for good; unacked ones stay with their consumers."
        )

    def action_delete(self) -> None:
        self._confirm("Delete", "The queue, its messages and its bindings are deleted; its consumers are cancelled.")

    def _confirm(self, verb: str, consequence: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._change(verb.lower(), f"{verb}d {self.queue_name}.")

        self.app.push_screen(ConfirmScreen(verb, "queue", self.queue_name, self.vhost, consequence), answered)

    @work(group="queue-change", exit_on_error=False)
    async def _change(self, what: str, done: str) -> None:
        management = lab_of(self).management
        try:
            if what == "purge":
                await management.purge(self.vhost, self.queue_name)
            else:
                await management.delete_queue(self.vhost, self.queue_name)
        except BrokerError as exc:
            self.notify(printable(str(exc)), title=f"Could not {what}", severity="error")
            return
        self.notify(printable(done), title="Done")
        poller = lab_of(self).poller
        if poller is not None:
            poller.refresh_now()
        if what == "delete":
            self.dismiss(None)


@dataclass(frozen=True)
class FirstLook:
    """A queue's watch and its first look, asked before the screen is shown."""

    watch: QueueWatch
    look: asyncio.Task[QueueLook]

    @classmethod
    def ask(cls, management: ManagementClient, vhost: str, name: str) -> FirstLook:
        watch = QueueWatch(management, vhost, name)
        look = asyncio.ensure_future(watch.look())
        look.add_done_callback(lambda done: done.cancelled() or done.exception())  # its error is the screen's to show
        return cls(watch, look)


async def open_queue(asking: Screen[Any], vhost: str, name: str) -> None:
    """Push the queue screen on `name` (the kept one if there is one) over `asking`, with its first look in it if
    that comes within FIRST_LOOK_WAIT: one layout and one frame, not a screen saying it is asking redrawn a moment
    later. A key that took the user elsewhere meanwhile wins: the queue screen does not come up over it."""
    app = asking.app
    try:
        first: FirstLook | None = FirstLook.ask(lab_of(app).management, vhost, name)
    except BrokerError:
        first = None  # no management API client: the screen says so
    if first is not None:
        try:
            await asyncio.wait([first.look], timeout=FIRST_LOOK_WAIT)
        except asyncio.CancelledError:  # another Enter came first
            first.look.cancel()
            raise
        if app.screen is not asking:
            first.look.cancel()
            return
    if app.is_screen_installed(KEPT):
        kept = app.get_screen(KEPT)
        assert isinstance(kept, QueueScreen)
        kept.show_queue(vhost, name, first)
    else:
        app.install_screen(QueueScreen(vhost, name, first), name=KEPT)
    app.push_screen(KEPT)
