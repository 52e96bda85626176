"""Watching a live run that someone else started: the live run screen, fed by a watcher, with no control.

WatchingScreen owns the watcher (engine.watch) and says what it is waiting for; once a run introduces itself it
puts a WatchScreen on top, which draws that run as the live screen draws its own. Esc leaves both.
"""

from __future__ import annotations

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.widgets import Static

from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.engine.watch import Watch, WatchedRun, Watcher
from amqp_lab.scenario.model import Scenario
from amqp_lab.ui.lab import lab_of
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable
from amqp_lab.ui.widgets.fitting_footer import FittingFooter
from amqp_lab.ui.widgets.status_bar import StatusBar

WATCHING_ONLY = "Watching only: this run belongs to whoever started it."


class WatchScreen(LiveRunScreen, inherit_bindings=False):
    """One watched run: every panel of the live screen, none of its controls."""

    SHOWS_RATE_SET = False
    BINDINGS = [
        Binding("slash", "filter", "Filter", tooltip="Filter the event log"),
        Binding("P", "present", "Projector", tooltip="Projector mode: the flow and a few figures, large"),
        Binding("e", "export", "Export", tooltip="Save the report (JSON) and a screenshot (SVG)"),
        Binding("escape", "leave", "Back", tooltip="Stop watching"),
    ]
    # Keys of the live screen that would change the run: pressed here, they say why nothing happens.
    REFUSED = frozenset(
        ["space", "plus", "minus", "equals_sign", "a", "d", "x", "h", "r", "s", "n", "b", "B", "H", "R"]
    )

    def __init__(self, run: WatchedRun, watch: Watch) -> None:
        super().__init__(run.scenario)
        self.run = run
        self.source = watch

    @property
    def latest(self) -> RunSnapshot | None:
        return self.source.latest if self.source.run is self.run else None

    @property
    def ended(self) -> RunEnded | None:
        return self.source.ended if self.source.run is self.run else None

    def _begin(self, scenario: Scenario) -> None:
        self.query_one(ClientsTable).border_title = "Clients (watched: no controls)"

    def on_key(self, event: events.Key) -> None:
        if event.key in self.REFUSED:
            event.stop()
            self.notify(WATCHING_ONLY, severity="warning")

    @property
    def broker(self) -> str:
        return self.run.broker  # as the run names it

    def _owns_a_going_run(self) -> bool:
        return False  # the run goes on without its watchers


class WatchingScreen(StyleKeepingScreen[None]):
    """Waits for a live run to watch (one by id, or whichever comes), then shows it."""

    BINDINGS = [Binding("escape", "leave", "Back", tooltip="Stop watching")]

    def __init__(self, run_id: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.shown: WatchScreen | None = None
        self._finished = False  # the shown run's end drawn

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Middle(), Center():
            yield Static(id="watch-status")
        yield FittingFooter()

    def on_mount(self) -> None:
        self.query_one(StatusBar).follow(self)
        self._watch()

    @work(group="watch", exclusive=True)
    async def _watch(self) -> None:
        await Watcher(lab_of(self).settings, self.run_id, self._changed).run()

    def _changed(self, watch: Watch) -> None:
        broker = lab_of(self).settings.primary.display()
        line = Text.assemble(("Watching for live runs on ", "bold"), (broker, "bold"), "\n\n")
        line.append(watch.status[:1].upper() + watch.status[1:])
        line.append("\n\nA run started with amqp-lab (the lab, run or workshop) shows here by itself.", style="dim")
        self.query_one("#watch-status", Static).update(line)
        run = watch.run
        if run is None:
            return
        shown = self.shown
        if shown is None or shown.run is not run:
            if shown is not None and shown.is_attached:
                if not shown.is_current:
                    return  # help or a filter over the old run: the new one waits until that is closed
                shown.dismiss()
            self.shown = screen = WatchScreen(run, watch)
            self._finished = False
            self.app.push_screen(screen, callback=lambda _: self._left(screen))
        elif watch.ended is not None and not self._finished:
            self._finished = True
            shown.on_run_finished()

    def _left(self, screen: WatchScreen) -> None:
        if screen is self.shown:  # Esc on the run shown: stop watching (a replaced run is not left by the user)
            self.dismiss()

    def action_leave(self) -> None:
        self.dismiss()
