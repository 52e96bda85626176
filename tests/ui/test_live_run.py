"""The live run screen and the workshop against the real broker, driven with Pilot as a user would.

Every control is pressed and its effect awaited on screen (the clients table, the
header, the event log, the timeouts panel); every run ends with nothing of it left
on the broker.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from amqp_lab.broker.connection import Backoff
from amqp_lab.compare import setting_changes
from amqp_lab.config import Settings
from amqp_lab.engine.recording import read
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import AmqpLabApp, make_app
from amqp_lab.ui.screens.builder import BuilderScreen, Field
from amqp_lab.ui.screens.compare import CompareScreen
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable
from amqp_lab.ui.widgets.event_log import EventLog
from amqp_lab.ui.widgets.trends import Trend
from amqp_lab.workshop import experiment
from fault_proxy import FaultProxy
from rabbitmq_node import VERSIONS, PrivateNode
from textual.widgets import Input, Static
from textual.widgets._footer import FooterKey

from tests.conftest import busy_factor, settings_for, shown_text, wait_for
from tests.engine.conftest import nothing_left

SIZE = (140, 40)


def header(app: AmqpLabApp) -> str:
    return shown_text(app.screen.query_one("#run-header"))


def footer(app: AmqpLabApp) -> set[str]:
    """The keys the footer offers, by what it calls them."""
    return {str(key.description) for key in app.screen.query(FooterKey)}


def state(app: AmqpLabApp, client: str) -> str | None:
    return app.screen.query_one(ClientsTable).state_of(client)


def events(app: AmqpLabApp) -> list[str]:
    return app.screen.query_one(EventLog).shown


def ledger_panel(app: AmqpLabApp) -> Static:
    return app.screen.query_one("#ledger", Static)


def panel_lines(app: AmqpLabApp) -> list[str]:
    """The ledger panel's lines, without its border."""
    return [line.strip("│ ") for line in shown_text(ledger_panel(app)).splitlines()[1:-1]]


def exported_report(folder: Path) -> dict[str, object]:
    return json.loads(next(folder.glob("*.json")).read_text())


def select(app: AmqpLabApp, client: str) -> None:
    table = app.screen.query_one(ClientsTable)
    table.move_cursor(row=table.get_row_index(client))


async def test_every_live_control_shows_its_effect_and_stop_cleans_up(settings: Settings, tmp_path: Path) -> None:
    app = make_app(settings, backoff=Backoff(0.2, 1.0), builder="workers")
    app.export_dir = tmp_path
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, BuilderScreen), what="the builder")
        for key, value in (("duration", "2m"), ("workers.rate", "20")):
            box = next(f for f in app.screen.query(Field) if f.key == key).query_one(Input)
            box.value = value
        builder = app.screen
        assert isinstance(builder, BuilderScreen)
        await wait_for(
            lambda: (
                builder.scenario is not None
                and builder.scenario.duration == 120
                and builder.scenario.workers.rate == 20
            ),
            what="the edited options taken",
        )
        await pilot.press("ctrl+r")
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="the live screen")
        await wait_for(lambda: state(app, "worker-3") == "running", what="three running workers")
        await wait_for(lambda: "tasks (direct)" in shown_text(app.screen.query_one("#flow")), what="the flow")
        run_id = app.run_latest.run_id

        await pilot.press("space")
        await wait_for(lambda: state(app, "producer-1") == "paused" and "PAUSED" in header(app), what="paused")
        await pilot.press("space")
        await wait_for(lambda: state(app, "producer-1") == "running", what="resumed")

        await pilot.press("plus")
        await wait_for(lambda: any("rate set to 40/s" in e for e in events(app)), what="the new rate in the log")
        assert "rate 40/s" in header(app)
        await pilot.press("minus", "minus")
        await wait_for(lambda: any("rate set to 10/s" in e for e in events(app)), what="the rate halved twice")

        # Under help the run is not drawn (nobody reads it) but its trends keep their once-a-second points;
        # back, it shows them at once.
        run = app.screen
        assert isinstance(run, LiveRunScreen)
        published = run.history.series["published/s"].points
        await pilot.press("question_mark")
        await wait_for(lambda: app.screen is not run, what="help over the run")
        taken = len(published)
        await wait_for(lambda: len(published) >= taken + 2, what="trend points taken under help")
        await pilot.press("escape")
        await pilot.pause()
        drawn = next(t for t in run.query(Trend) if t.series_name == "published/s")
        assert drawn.points == list(published)

        await pilot.press("a")
        await wait_for(lambda: state(app, "worker-4") == "running", what="an added worker")
        await pilot.press("d")
        await wait_for(lambda: state(app, "worker-4") is None, what="the added worker removed")

        select(app, "worker-1")
        await pilot.press("h")
        await wait_for(lambda: state(app, "worker-1") == "hung", what="worker-1 hung")
        await wait_for(lambda: "worker-1" in shown_text(app.screen.query_one("#timeouts")), what="listed as hung")
        await pilot.press("r")
        await wait_for(lambda: state(app, "worker-1") == "running", what="worker-1 restarted")
        await pilot.press("x")
        await wait_for(lambda: state(app, "worker-1") == "crashed", what="worker-1 crashed")
        await wait_for(lambda: any(e.startswith("crash worker-1") for e in events(app)), what="the crash logged")

        await pilot.press("slash", *"crash")
        await wait_for(lambda: events(app) and all("crash" in e for e in events(app)), what="only crashes listed")
        await pilot.press("escape")
        assert app.screen.query_one("#event-filter", Input).value == ""

        await pilot.press("e")
        await wait_for(lambda: len(list(tmp_path.glob("*.svg"))) == 1, what="the exported screenshot")
        report = exported_report(tmp_path)
        assert report["run_id"] == run_id and report["scenario"]["pattern"] == "workers"

        await pilot.press("escape")
        assert isinstance(app.screen, LiveRunScreen)  # a running run is not left behind by accident
        steering = {"Pause", "Stop", "Rate+", "Add", "Crash", "Record"}
        assert steering <= footer(app)
        await pilot.press("s")
        # The last snapshot says FINISHED a moment before the run's end (its report and cleanup) arrives.
        await wait_for(
            lambda: "nothing left on the broker" in header(app), timeout=60, what="the run finished and cleaned up"
        )
        assert app.run_ended is not None and app.run_ended.report is not None
        assert app.run_ended.report["ledger"]["lost"] == 0
        # The ledger panel gives the report's figures, every one that is not 0, and says they balance.
        await wait_for(lambda: "final, as in the report" in str(ledger_panel(app).border_title), what="final ledger")
        rows = (re.match(r"([a-z][a-z ]*?)\s+([\d,]+|✓|✗)(\s|$)", line) for line in panel_lines(app))
        shown = {row[1]: row[2] for row in rows if row}
        for name, value in app.run_ended.report["ledger"].items():
            if value and name != "outstanding":  # after the end, what is outstanding is lost
                assert shown.get(name.replace("_", " ")) == f"{value:,}", (name, value, shown)
        assert shown["balance"] == "✓"
        # Depths and rates beside "nothing left" are the last sampled before the cleanup, and the panel says so.
        flow_title = str(app.screen.query_one("#flow").border_title)
        assert flow_title.startswith("Message flow: last sample, at ") and flow_title.endswith("before the cleanup")
        assert await nothing_left(settings, run_id) == []
        # Nothing is left to steer: the footer offers what still applies.
        await wait_for(lambda: not steering & footer(app), what="the run's controls gone from the footer")
        assert {"Export", "Projector"} <= footer(app)
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, BuilderScreen), what="back in the builder")


async def test_workshop_handler_hangs_then_quitting_cleans_up(settings: Settings, tmp_path: Path) -> None:
    app = make_app(settings, backoff=Backoff(0.2, 1.0), experiment=experiment("handler-hangs"))
    app.export_dir = tmp_path  # a workshop records its runs there
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: state(app, "handler-1") == "running", what="the handler running")
        panel = lambda: shown_text(app.screen.query_one("#workshop-progress"))  # noqa: E731
        assert "step 1 of 3" in panel()
        run_id = app.run_latest.run_id

        await pilot.press("n")
        await wait_for(lambda: state(app, "handler-1") == "hung", what="the lab hung handler-1")
        assert "step 2 of 3" in panel()
        await wait_for(
            lambda: re.search(r"RPC timeouts\s+[1-9]", shown_text(app.screen.query_one("#timeouts"))) is not None,
            what="timeouts counted in the panel",
        )
        await pilot.press("n")
        await wait_for(lambda: state(app, "handler-1") == "running", what="handler-1 restarted")
        await wait_for(lambda: app.run_latest.counters.get("late_replies", 0) > 0, what="late replies")
        assert "last step" in panel()

        await pilot.press("q")  # quitting mid-run stops the run and cleans up first
    assert await nothing_left(settings, run_id) == []
    recorded = await asyncio.to_thread(lambda: read(next(tmp_path.glob("*.rec.gz"))))  # recorded to its end
    assert recorded.ended is not None and recorded.frames[-1].run_id == run_id
    assert any(e.kind == "timeout" for _, e in recorded.events)


async def test_workshop_rerun_step_starts_the_replacement_run(settings: Settings, tmp_path: Path) -> None:
    app = make_app(settings, backoff=Backoff(0.2, 1.0), experiment=experiment("immediate-flag"))
    app.export_dir = tmp_path
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            lambda: any(e.startswith("refused") and "540" in e for e in events(app)) if app.screen.is_mounted and
            isinstance(app.screen, LiveRunScreen) else False,
            what="the 540 refusal in the event log",
        )  # fmt: skip
        first = app.run_latest.run_id
        await pilot.press("n")
        await wait_for(lambda: app.run_latest is not None and app.run_latest.run_id != first, what="a second run")
        await wait_for(lambda: "rpc.unhandled" in shown_text(app.screen.query_one("#flow")), what="the DLX path")
        await pilot.press("n")
        await wait_for(lambda: app.run_latest.ledger.expired > 0, what="requests expiring into the DLX")
        await wait_for(lambda: "expired" in shown_text(app.screen.query_one("#flow")), what="expiries drawn")
        second = app.run_latest.run_id
        # Both runs are recorded, and the workshop panel says how to compare them.
        recordings = app.screen.recordings  # type: ignore[attr-defined]
        assert len(recordings) == 2
        progress = shown_text(app.screen.query_one("#workshop-progress"))
        assert "amqp-lab compare" in progress and recordings[0].name[:20] in progress
        await pilot.press("s")
        await wait_for(lambda: app.run_ended is not None, timeout=60, what="the run ended")
        await pilot.press("c")  # the two runs side by side, in the lab
        await wait_for(lambda: isinstance(app.screen, CompareScreen), what="the comparison")
        tables = shown_text(app.screen.query_one("#compare-tables"))
        assert "what differs in the scenarios" in tables and "figures at the end of each run" in tables
        changed = [line.split()[0] for line in tables.splitlines() if line.strip().startswith("rpc.")]
        assert changed, tables
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="back on the run")
    assert await nothing_left(settings, first) == []
    assert await nothing_left(settings, second) == []
    before, after = read(recordings[0]), read(recordings[1])
    assert before.frames[-1].run_id == first and after.frames[-1].run_id == second
    assert before.ended is not None and after.ended is not None
    assert any(e.kind == "refused" and "540" in e.text for _, e in before.events)
    assert sorted(changed) == sorted(c.key for c in setting_changes(before, after))  # the rerun's overrides


async def test_a_lost_link_shows_reconnecting_and_the_run_resumes(rabbit: PrivateNode) -> None:
    if rabbit.version != VERSIONS[0]:
        pytest.skip("the client side is under test here: one broker version is enough")
    proxy = FaultProxy(rabbit.amqp_port)
    await proxy.start()
    # A short answer timeout notices the lost link soon; stretched on a loaded machine, where a handshake through
    # the proxy takes longer and would be given up on, again and again, before the run ever started.
    settings = settings_for(rabbit, amqp_url=proxy.url_for(rabbit.amqp_url), timeout=2.0 * busy_factor())
    app = make_app(settings, backoff=Backoff(0.2, 1.0))

    def seen() -> str:
        return f"header {header(app)!r}, worker-1 {state(app, 'worker-1')!r}, events {events(app)[:5]}"

    try:
        async with app.run_test(size=SIZE):
            await app.push_screen(LiveRunScreen(load("workers", ["duration=2m", "workers.rate=20"])))
            await wait_for(
                lambda: "RUNNING" in header(app) and state(app, "worker-1") == "running", what="the run", explain=seen
            )
            proxy.down()  # the broker's host is unreachable: connections reset, new ones refused
            await wait_for(
                lambda: "RECONNECTING" in header(app) and state(app, "worker-1") == "reconnecting",
                timeout=10,
                what="the header and the clients to say reconnecting",
            )
            assert "broker gone for" in header(app)
            proxy.heal()
            await wait_for(
                lambda: "RUNNING" in header(app) and state(app, "worker-1") == "running",
                timeout=30,
                what="the run to resume",
            )
            await wait_for(lambda: any("reconnected after" in line for line in events(app)), what="the event")
            assert app.run_latest is not None
            run_id = app.run_latest.run_id
            await app.end_run()
    finally:
        await proxy.close()
    assert app.run_ended is not None and not app.run_ended.leftovers
    assert await nothing_left(settings, run_id) == []
