"""The event log: every timeout, return, redelivery, crash and reconnect, newest first, filterable."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from amqp_lab.engine.events import Event, EventKind
from amqp_lab.ui.colors import BAD, GOOD, WARN

SHOWN = 200
MIN_TEXT = 12  # columns: narrower, an event's text is cut at the edge rather than wrapped a word a line
KIND_STYLES = {
    EventKind.TIMEOUT: BAD,
    EventKind.CRASH: BAD,
    EventKind.ERROR: BAD,
    EventKind.REFUSED: BAD,
    EventKind.LATE: WARN,
    EventKind.ORPHAN: WARN,
    EventKind.PARTIAL: WARN,
    EventKind.RETURN: WARN,
    EventKind.NACK: WARN,
    EventKind.FAULT: WARN,
    EventKind.RESTART: GOOD,
}


def matches(event: Event, wanted: str) -> bool:
    """Every word of the filter appears in the event's kind, client or text."""
    line = f"{event.kind} {event.client} {event.text}".lower()
    return all(word in line for word in wanted.lower().split())


class EventLog(Vertical):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._events: list[Event] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter events: timeout, crash, worker-2 … (Esc clears)", id="event-filter")
        yield Static(id="events")

    def show(self, events: Iterable[Event]) -> None:
        self._events = list(events)
        self._render_events()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._render_events()

    def on_resize(self) -> None:
        self._render_events()

    def _render_events(self) -> None:
        """As many events as fit, newest first; a long text wraps under itself, never cut."""
        wanted = self.query_one("#event-filter", Input).value
        box = self.query_one("#events", Static)
        height, width = max(box.size.height, 1), box.size.width
        lines: list[Text] = []
        shown = self._matching()[:height]
        names = min(max((len(e.client) for e in shown), default=0), 16)  # the client column as wide as needed
        for e in shown:
            if len(lines) >= height:
                break
            head = Text.assemble(
                f"{e.at:6.1f}s ", (f"{e.kind:<8}", KIND_STYLES.get(e.kind, "")), f" {e.client[:names]:<{names}}  "
            )
            room = width - head.cell_len
            parts = textwrap.wrap(e.text, room) if room >= MIN_TEXT else [e.text]
            lines.append(head + Text(parts[0] if parts else ""))
            lines += [Text(" " * head.cell_len + part) for part in parts[1:]]
        if not lines:
            lines = [Text("no events match" if wanted else "no events yet", style="dim")]
        # As many lines as fit, so the widget never changes size and never needs a layout pass.
        box.update(Text("\n", no_wrap=True, overflow="ellipsis").join(lines[:height]), layout=False)

    def _matching(self) -> list[Event]:
        """The events the filter lets through, newest first."""
        wanted = self.query_one("#event-filter", Input).value
        return [e for e in reversed(self._events) if matches(e, wanted)]

    @property
    def shown(self) -> list[str]:
        """The newest SHOWN events the filter lets through, as "kind client text": what a reader scrolls to."""
        return [f"{e.kind} {e.client} {e.text}" for e in self._matching()[:SHOWN]]
