"""A plain Textual app shaped like the lab's live run screen, for bench/tui_responsiveness.py: what Textual itself
costs on this machine for the changes the live run's keys make, with none of the lab's code in the way.

The same parts in the same containers (a header, five big figures, the flow, a clients table, problems and events,
six trends, the ledger, a footer), filled with fixed text; the lab's help text in a modal on `?`; the lab's Esc
handling (its terminal driver), so Esc waits as long as in the lab. Keys, each the plainest way Textual offers to
make the live run key's change:

  ?      help, a modal with the lab's help text; Esc closes it
  P      "projector": a class on the screen that hides the side panels, shows the figures and recolours the rest
         (the lab changes its theme as well, which costs more); P again: every panel
  a d    a row added to the clients table, and removed (the lab's row comes and goes with a client's connection)

    .venv/bin/python bench/plain_textual_app.py
"""

from __future__ import annotations

from amqp_lab.ui.screens.help import HELP
from amqp_lab.ui.terminal import PromptEscapeApp
from rich.markdown import Markdown
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Digits, Footer, Input, Sparkline, Static
from textual.widgets._footer import FooterKey

FIGURES = ("published", "delivered", "ready", "lost", "p99")
COLUMNS = ("client", "role", "state", "sent", "received", "rate/s", "unacked", "detail")
TRENDS = ("published/s", "delivered/s", "acked/s", "ready", "unacked", "p99 ms")
LIVE_RUN_KEYS = (
    ("space", "Pause"), ("plus", "Faster"), ("minus", "Slower"), ("x", "Crash"), ("h", "Hang"),
    ("r", "Restart"), ("slash", "Filter"), ("e", "Export"), ("R", "Record"), ("s", "Stop"),
)  # fmt: skip
READY = "plain Textual, ready"  # the bench waits for it before its first key


class Help(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Markdown(HELP))
        yield Footer()


class PlainTextualApp(PromptEscapeApp):
    CSS = """
    #header, #flow, #timeouts, #events, #ledger, DataTable, #trends { border: round $primary; }
    #status-bar { height: 1; }
    #status-bar Static { width: auto; }
    #header { height: 3; }
    #header Static { width: auto; }
    #filter { display: none; }
    #present { display: none; height: 7; }
    .figure { width: 1fr; }
    #flow { height: 9; }
    #middle { height: 1fr; }
    DataTable { height: auto; max-height: 60%; }
    #bottom { height: 1fr; }
    #timeouts { width: 30; height: 1fr; }
    #events { height: 1fr; }
    #side { width: 44; }
    #trends { height: 1fr; }
    .trend { height: 1; }
    .trend-label { width: 13; }
    Sparkline { width: 1fr; }
    .trend-value { width: 9; }
    #ledger { height: auto; }
    Screen.-present #present { display: block; }
    Screen.-present #middle { display: none; }
    Screen.-present #flow { height: 1fr; border: heavy $accent; color: $text; background: black; }
    Screen.-present #header { border: heavy $accent; background: black; }
    """
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("P", "present", "Projector"),
        Binding("a", "add", "Add"),
        Binding("d", "remove", "Remove"),
        # The live run's other keys, doing nothing here: its footer as full as the live run's
        *(Binding(key, f"nothing('{label}')", label) for key, label in LIVE_RUN_KEYS),
    ]

    def compose(self) -> ComposeResult:
        with Horizontal(id="status-bar"):
            yield Static("amqp-lab · a plain Textual app shaped like the live run", id="status")
            yield Static(" AMQP connected ")
            yield Static(" management connected ")
        with Horizontal(id="header"):
            yield Static("RUNNING 12 s of 3600 s   ")
            yield Static("lost 0 · published 48,000 acked 47,990 outstanding 10")
        with Horizontal(id="present"):
            for name in FIGURES:
                with Vertical(classes="figure"):
                    yield Static(name)
                    yield Digits("4,000")
        yield Static("\n".join(f"producer-1 ──▶ lab.tasks ──▶ worker-{n}   4,000/s" for n in range(1, 8)), id="flow")
        with Horizontal(id="middle"):
            with Vertical():
                yield DataTable(id="clients")
                with Horizontal(id="bottom"):
                    with Vertical(id="timeouts"):
                        yield Static("nothing timed out")
                        yield Static("nothing stalled")
                    with VerticalScroll(id="events"):
                        yield Input(placeholder="filter the events", id="filter")
                        yield Static("\n".join(f"12.{n:03} worker-{n} added a worker" for n in range(40)))
            with Vertical(id="side"):
                with VerticalScroll(id="trends"):
                    for name in TRENDS:
                        with Horizontal(classes="trend"):
                            yield Static(name, classes="trend-label")
                            yield Sparkline([(n * 37 % 11) for n in range(120)])
                            yield Static("4,000", classes="trend-value")
                yield Static("\n".join(f"{name:<12} 48,000" for name in TRENDS), id="ledger")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        for _row in range(4):
            self.action_add()
        self.call_after_refresh(self._say_ready)

    def _say_ready(self) -> None:
        """Said once the footer has its keys: every widget is there to be counted."""
        if not self.screen.query(FooterKey):
            self.call_after_refresh(self._say_ready)
            return
        self.query_one("#status", Static).update(f"{READY}: {len(list(self.screen.walk_children()))} widgets")

    def action_help(self) -> None:
        if not self.is_screen_installed("help"):
            self.install_screen(Help(), name="help")
        self.push_screen("help")

    def action_nothing(self, _key: str) -> None:
        pass

    def action_present(self) -> None:
        self.screen.toggle_class("-present")

    def action_add(self) -> None:
        table = self.query_one(DataTable)
        n = table.row_count + 1
        table.add_row(f"worker-{n}", "worker", "running", "0", "48,000", "4,000", "10", "", key=f"worker-{n}")

    def action_remove(self) -> None:
        table = self.query_one(DataTable)
        table.remove_row(f"worker-{table.row_count}")


if __name__ == "__main__":
    PlainTextualApp().run()
