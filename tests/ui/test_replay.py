"""`amqp-lab replay`: the live run screen on a recording, with no broker. At any point the panels show what the live
screen showed for that frame; the player's keys move through the run, step to the next event of a kind, and stop at
the end with the run's verdict."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from amqp_lab.engine.events import Event, EventKind
from amqp_lab.engine.recording import Recorder, Recording, read
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.files import load
from amqp_lab.ui.replay_app import ReplayApp
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.themes import STYLES
from amqp_lab.ui.widgets.clients_table import ClientsTable
from textual.pilot import Pilot

from tests.conftest import shown_text, wait_for
from tests.recorded import CRASH_AT, frame_at, write_recording
from tests.ui.test_screen_without_broker import BareLab
from tests.ui.test_snapshots import steady_cursors, tables_measured

SIZE = (140, 40)
PANELS = ("#flow", "#ledger", "#timeouts")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    path = write_recording(tmp_path_factory.mktemp("replay") / "workers.rec.gz")
    return replace(read(path), recorded_at="2026-12-03T09:00:00Z")  # the screen says when: fixed for snapshots


def panels(screen: LiveRunScreen) -> dict[str, str]:
    shown = {selector: shown_text(screen.query_one(selector)) for selector in PANELS}
    # The table's rows; its title differs on purpose (a replay offers no crash, hang or restart keys).
    shown["clients"] = shown_text(screen.query_one(ClientsTable)).split("\n", 1)[1]
    return shown


class StyledBareLab(BareLab):
    """The bare lab with the app's styles: its panels drawn as the lab draws them."""

    CSS_PATH = STYLES


async def live_panels(snapshot: RunSnapshot) -> dict[str, str]:
    """What the live run screen shows for this snapshot."""
    lab = StyledBareLab(snapshot)
    async with lab.run_test(size=SIZE) as pilot:
        lab.open_run(load("workers", []))
        await wait_for(lambda: _drawn(lab.screen, snapshot), what="the live screen drawn")
        await pilot.pause()
        return panels(lab.screen)  # type: ignore[arg-type]


def _drawn(screen: object, snapshot: RunSnapshot) -> bool:
    """Every part of the screen drawn from this snapshot."""
    if not isinstance(screen, LiveRunScreen) or len(screen._drawn) < 4:
        return False
    return all(drawn is snapshot for drawn in screen._drawn.values()) and tables_measured(screen.app)  # type: ignore[arg-type]


async def paused_at(pilot: Pilot[None], app: ReplayApp, *keys: str) -> RunSnapshot:
    await pilot.press(*keys)
    await wait_for(lambda: _drawn(app.screen, app.player.current), what="the replay drawn at its position")
    await pilot.pause()
    return app.player.current


async def test_a_replay_shows_what_the_live_screen_showed_at_three_points(recording: Recording) -> None:
    app = ReplayApp(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="the replay screen")
        start = await paused_at(pilot, app, "space", "home")
        assert start is recording.frames[0]
        replayed_start = panels(app.screen)  # type: ignore[arg-type]
        middle = await paused_at(pilot, app, *["right"] * 5)  # 5 x 5 s
        assert middle.elapsed == 25.0
        replayed_middle = panels(app.screen)  # type: ignore[arg-type]
        header = shown_text(app.screen.query_one("#run-header"))
        assert f"published {middle.ledger.published:,}" in header and "RUNNING" in header
        end = await paused_at(pilot, app, "end")
        assert end is recording.frames[-1] and end.state == "finished"
        replayed_end = panels(app.screen)  # type: ignore[arg-type]
        header = shown_text(app.screen.query_one("#run-header"))
        assert "FINISHED" in header and "nothing left on the broker" in header
        assert "last sample, at 60 s, before the cleanup" in shown_text(app.screen.query_one("#flow"))

    assert replayed_start == await live_panels(start)
    assert replayed_middle == await live_panels(middle)
    assert replayed_end["clients"] == (await live_panels(end))["clients"]


async def test_the_player_steps_to_the_next_event_of_a_kind(recording: Recording) -> None:
    app = ReplayApp(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="the replay screen")
        await paused_at(pilot, app, "space", "home")
        assert app.player.kind == "info"
        await pilot.press("k")
        assert app.player.kind == "crash" and "n: next crash" in shown_text(app.screen.query_one("#player"))
        at = await paused_at(pilot, app, "n")
        assert at.elapsed == CRASH_AT and not app.player.playing  # the first frame that shows it
        log = app.screen.query_one("#events")
        newest = lambda: shown_text(log).splitlines()[0].split()  # noqa: E731
        await wait_for(lambda: newest()[1:4] == ["crash", "worker-2", "crashed:"], what="the crash newest in the log")
        await pilot.press("n")  # there is no second crash: it says so and stays
        await pilot.pause()
        assert app.player.current.elapsed == CRASH_AT

        await pilot.press("home", "right_square_bracket", "right_square_bracket", "right_square_bracket", "space")
        assert app.player.speed == 8 and app.player.playing
        # At x8 a minute of run takes 7.5 s; the player stops on the last frame, with the run's verdict.
        await wait_for(lambda: app.player.at_end, timeout=20, what="the replay at its end")
        assert not app.player.playing and app.run_ended is recording.ended
        await wait_for(lambda: "FINISHED" in shown_text(app.screen.query_one("#run-header")), what="the verdict")


async def test_keys_that_would_change_a_run_are_not_offered(recording: Recording) -> None:
    app = ReplayApp(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="the replay screen")
        keys = {binding.key for (_, binding, _, _) in app.screen.active_bindings.values()}
        assert {"space", "left", "right", "n", "k"} <= keys
        assert not keys & {"x", "h", "a", "d", "s", "plus"}  # crash, hang, add, remove, stop, rate
        await pilot.press("escape")
        await wait_for(lambda: not app.is_running, what="Esc to leave the replay")


def test_replay_screen_mid_run(snap_compare, recording: Recording) -> None:  # type: ignore[no-untyped-def]
    async def at_the_crash(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, ReplayApp)
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="the replay screen")
        await paused_at(pilot, app, "space", "home", "k", "n")
        steady_cursors(app)
        await pilot.pause()

    assert snap_compare(ReplayApp(recording), terminal_size=SIZE, run_before=at_the_crash)


async def test_events_between_two_frames_are_replayed(tmp_path: Path) -> None:
    """A burst of events between two frames: the next frame's tail no longer carries the first of them (a snapshot
    holds the latest hundred). The live screen, drawing more often, could show them: the replay shows them too."""
    burst = tuple(Event(1.1, EventKind.TIMEOUT, "requester-1", f"request {n} had no reply", seq=n) for n in range(2, 7))
    first = frame_at(1.0)
    recorder = Recorder(tmp_path / "burst.rec.gz", load("workers", []), "amqp://127.0.0.1:5672/")
    recorder.add(replace(first, events=first.events[:1]))  # seq 1
    recorder.add(replace(first, elapsed=1.1, events=burst))  # not due: between frames
    recorder.add(replace(first, elapsed=1.3, events=burst[-2:]))  # the tail holds 5 and 6 only
    recorder.finish(RunEnded(replace(first, elapsed=1.4, state="finished", events=burst[-2:]), {}, (), None))
    recording = read(tmp_path / "burst.rec.gz")
    assert [e.seq for _, e in recording.events] == [1, 2, 3, 4, 5, 6]

    app = ReplayApp(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="the replay screen")
        await paused_at(pilot, app, "space", "end")
        log = app.screen.query_one("#events")
        await wait_for(lambda: all(f"request {n} had" in shown_text(log) for n in range(2, 7)), what="the burst")


async def test_an_export_mid_replay_names_the_broker_the_run_was_recorded_on(
    recording: Recording, tmp_path: Path
) -> None:
    app = ReplayApp(recording)
    app.export_dir = tmp_path
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, LiveRunScreen), what="the replay screen")
        at = await paused_at(pilot, app, "space", "home", "right")
        await pilot.press("e")
        await wait_for(lambda: any(tmp_path.glob("*.json")), what="the export")
    report = json.loads(await asyncio.to_thread(lambda: next(tmp_path.glob("*.json")).read_text()))
    assert report["broker"] == recording.broker  # not the replay app's stand-in settings
    assert report["ledger"]["published"] == at.ledger.published
