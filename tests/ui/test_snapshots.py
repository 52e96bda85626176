"""Snapshot tests of screens whose content is stable: a broker that cannot be reached.

Regenerate after a deliberate change with `pytest tests/ui --snapshot-update`.
"""

from __future__ import annotations

from dataclasses import replace

from amqp_lab.broker.connection import Backoff, ConnectionState
from amqp_lab.config import build
from amqp_lab.engine.events import Event, EventKind
from amqp_lab.engine.ledger import LedgerCounts
from amqp_lab.engine.metrics import Percentiles
from amqp_lab.engine.snapshot import ClientStats, QueueDepth, RunSnapshot
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.screens.connection import ConnectionScreen
from amqp_lab.ui.screens.help import HelpScreen
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.event_log import EventLog
from amqp_lab.ui.widgets.trends import Trend
from amqp_lab.workshop import experiment
from rich.text import Text
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Sparkline, TextArea

from tests.conftest import wait_for

SIZE = (120, 34)


def unreachable_lab(theme: str = "lab-dark") -> AmqpLabApp:
    settings = build(
        {
            "amqp_url": "amqp://guest:s3cret@127.0.0.1:1/",
            "management_url": "http://127.0.0.1:1/",
            "refresh": 3600,
        }
    )
    return make_app(settings, backoff=Backoff(0.2, 1.0), theme=theme)


def steady_cursors(app: App[None]) -> None:
    """Stop text cursors blinking: on a loaded machine the snapshot could fall in either phase of a blink."""
    for editor in app.screen.query("Input, TextArea"):
        assert isinstance(editor, Input | TextArea)
        editor.cursor_blink = False


async def settled(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, AmqpLabApp)
    await wait_for(
        lambda: (
            app.amqp_status is not None and app.amqp_status.state is ConnectionState.FAILED and app.snapshot is not None
        ),
        what="both connections to fail",
    )
    await pilot.pause()  # a toast is a message to the app: let those already sent arrive, then clear them
    app.clear_notifications()
    steady_cursors(app)
    await pilot.pause()


def test_overview_when_the_broker_is_unreachable(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(unreachable_lab(), terminal_size=SIZE, run_before=settled)


def test_overview_in_the_light_theme(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(unreachable_lab("lab-light"), terminal_size=SIZE, run_before=settled)


def test_help_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def open_help(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(pilot.app.screen, HelpScreen), what="the help screen")
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(unreachable_lab(), terminal_size=SIZE, run_before=open_help)


def test_connection_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def open_form(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("c")
        await wait_for(lambda: isinstance(pilot.app.screen, ConnectionScreen), what="the connection form")
        pilot.app.clear_notifications()  # a failure said late, on a loaded machine, would cover the form
        steady_cursors(pilot.app)
        await pilot.pause()

    assert snap_compare(unreachable_lab(), terminal_size=SIZE, run_before=open_form)


# The lab's screens, with a frozen run: the app is given a fixed snapshot instead of starting a run.

FROZEN = RunSnapshot(
    run_id="f00d42",
    title="workers",
    pattern="workers",
    state="running",
    elapsed=12.4,
    duration=30.0,
    ledger=LedgerCounts(
        published=620, confirmed=620, copies=620, delivered=590, redelivered=10, acked=571, outstanding=49
    ),
    counters={"returns": 0},
    rates={"published": 50.0, "delivered": 48.0, "acked": 47.5},
    latency={"delivery": Percentiles(240, 31.0, 88.0, 120.0, 131.0)},
    latency_total={"delivery": Percentiles(571, 29.0, 85.0, 118.0, 140.0)},
    clients=(
        ClientStats("producer-1", "producer", "running", 620, 0, 50.0, 0),
        ClientStats("worker-1", "worker", "running", 0, 205, 17.0, 3),
        ClientStats("worker-2", "worker", "hung", 0, 190, 0.0, 10),
        ClientStats("worker-3", "worker", "running", 0, 195, 16.5, 4),
    ),
    queues=(QueueDepth("lab.f00d42.tasks", 32, 17, 3, in_rate=50.0, out_rate=33.5),),
    events=(
        Event(0.0, EventKind.INFO, "run", "started workers as run f00d42", 1),
        Event(6.2, EventKind.FAULT, "worker-2", "hang", 2),
        Event(9.8, EventKind.CRASH, "worker-1", "crashed: channel dropped", 3),
        Event(9.8, EventKind.CRASH, "worker-1", "4 unacked message(s) back to the queue for redelivery", 4),
        Event(10.1, EventKind.RESTART, "worker-1", "restarted", 5),
    ),
)


class FrozenRunLab(AmqpLabApp):
    """Shows FROZEN wherever a run would start, so the screen is the same on every machine."""

    def begin_run(self, scenario: object) -> None:
        self.run_latest = replace(FROZEN, title=getattr(scenario, "title", "workers"))


def every_part_drawn(app: AmqpLabApp) -> bool:
    """The live screen draws one part per tick: wait for the last part (trends) and the event log."""
    trends = app.screen.query(Trend)
    return (
        len(trends) == 6
        and all(trend.query(Sparkline) for trend in trends)
        and len(app.screen.query_one(EventLog).shown) == 5
        and tables_measured(app)
    )


def tables_measured(app: AmqpLabApp) -> bool:
    """A DataTable widens its columns to new cells only when idle: a loaded machine can draw a frame before."""
    return all(
        column.content_width >= max((Text(str(cell)).cell_len for cell in table.get_column(column.key)), default=0)
        for table in app.screen.query(DataTable)
        for column in table.ordered_columns
    )


def redraw_tables(app: AmqpLabApp) -> None:
    """On a loaded machine a DataTable was seen keeping its cursor row as drawn before its columns were measured;
    nothing changes in a frozen run to draw it again. A change of zebra_stripes clears its render caches."""
    for table in app.screen.query(DataTable):
        table.zebra_stripes = not table.zebra_stripes
        table.zebra_stripes = not table.zebra_stripes


def frozen_lab(**kwargs: object) -> AmqpLabApp:
    app = unreachable_lab()
    frozen = FrozenRunLab(app.settings, backoff=Backoff(0.2, 1.0), **kwargs)  # type: ignore[arg-type]
    return frozen


def test_builder_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    app = make_app(unreachable_lab().settings, backoff=Backoff(0.2, 1.0), builder="pub-sub")
    assert snap_compare(app, terminal_size=(140, 40), run_before=settled)


def test_workshop_picker(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def open_picker(pilot: Pilot[None]) -> None:
        await settled(pilot)
        await pilot.press("w")
        await pilot.pause()

    assert snap_compare(unreachable_lab(), terminal_size=(140, 40), run_before=open_picker)


def test_live_run_screen(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def started(pilot: Pilot[None]) -> None:
        await settled(pilot)
        app = pilot.app
        await app.push_screen(LiveRunScreen(load("workers")))
        await wait_for(lambda: every_part_drawn(app), what="the frozen run shown")
        redraw_tables(app)
        await pilot.pause()

    assert snap_compare(frozen_lab(), terminal_size=(140, 40), run_before=started)


def test_live_run_screen_with_a_workshop_step(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def started(pilot: Pilot[None]) -> None:
        await settled(pilot)
        app = pilot.app
        found = experiment("load-spike")
        await app.push_screen(LiveRunScreen(found.scenario(), found))
        await wait_for(lambda: every_part_drawn(app), what="the frozen run shown")
        redraw_tables(app)
        await pilot.pause()

    assert snap_compare(frozen_lab(), terminal_size=(140, 40), run_before=started)


async def test_live_controls_are_in_the_command_palette() -> None:
    app = frozen_lab()
    async with app.run_test(size=(140, 40)) as pilot:
        await settled(pilot)
        await app.push_screen(LiveRunScreen(load("workers")))
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("Pause", "Rate+", "Rate-", "Add", "Remove", "Crash", "Hang", "Restart", "Export", "Stop"):
            assert title in commands, f"{title} missing from the command palette"
        app.call_later(commands["Filter"].callback)  # as the palette runs a chosen command
        await wait_for(lambda: app.screen.query_one("#event-filter").has_focus, what="the filter focused")
