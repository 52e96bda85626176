"""The live run screen playing a recording: play, pause, seek, speed x0.5 to x8, the next event of a kind.

Each part of the screen draws the recorded frame at the player's position, as it was drawn live; the trends and
the event log are rebuilt from the frames up to there, one trend point a recorded second.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from amqp_lab.engine.events import Event
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.ui.history import RunHistory
from amqp_lab.ui.player import Player
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable
from amqp_lab.ui.widgets.status_bar import StatusBar

PLAY_INTERVAL = 0.1
SCRUBBER_WIDTH = 40


class ReplayScreen(LiveRunScreen, inherit_bindings=False):
    SHOWS_RATE_SET = False
    DEFAULT_CSS = "#player { height: 1; text-wrap: nowrap; text-overflow: ellipsis; background: $boost; }"
    BINDINGS = [
        Binding("space", "play", "Play/Pause", tooltip="Play or pause the replay"),
        Binding("left", "seek(-5)", "-5 s", key_display="←", tooltip="Back 5 seconds of the run"),
        Binding("right", "seek(5)", "+5 s", key_display="→", tooltip="On 5 seconds of the run"),
        Binding("shift+left", "seek(-30)", "-30 s", show=False),
        Binding("shift+right", "seek(30)", "+30 s", show=False),
        Binding("home", "seek(-1e9)", "Start", show=False),
        Binding("end", "seek(1e9)", "End", show=False),
        Binding("left_square_bracket", "speed(-1)", "Slower", key_display="[", tooltip="Half as fast (down to x0.5)"),
        Binding("right_square_bracket", "speed(1)", "Faster", key_display="]", tooltip="Twice as fast (up to x8)"),
        Binding("n", "next_event", "Next event", tooltip="Go to the next event of the chosen kind"),
        Binding("k", "next_kind", "Kind", tooltip="Choose the kind of event n goes to"),
        Binding("slash", "filter", "Filter", tooltip="Filter the event log"),
        Binding("e", "export", "Export", tooltip="Save the report (JSON) and a screenshot (SVG)"),
        Binding("escape", "leave", "Quit", tooltip="Leave the replay"),
    ]

    def __init__(self, player: Player) -> None:
        super().__init__(player.recording.scenario)
        self.player = player
        self._fed = -1  # the last frame taken into the history
        # The events written with each frame: with those a frame's own tail no longer carried.
        self._written: dict[int, list[Event]] = {}
        for index, event in player.recording.events:
            self._written.setdefault(index, []).append(event)
        self._sampled_second: int | None = None
        self._played_at = time.monotonic()

    def compose(self) -> ComposeResult:
        yield Static(id="player")
        yield from super().compose()

    def on_mount(self) -> None:
        # Textual runs LiveRunScreen.on_mount after this one: it focuses the clients table, hence after_refresh.
        self.query_one(StatusBar).display = False  # no broker: the player bar says where the run came from
        self.call_after_refresh(self._as_recorded)
        self.set_interval(PLAY_INTERVAL, self._play)
        self._show_player()
        for note in self.player.recording.notes:
            self.notify(note, title="This recording", severity="warning", timeout=15)

    def _as_recorded(self) -> None:
        self.set_focus(None)  # the player's keys, not the clients table's
        self.query_one(ClientsTable).border_title = "Clients, as recorded"

    # -- playing -------------------------------------------------------------

    def _play(self) -> None:
        now = time.monotonic()
        index = self.player.index
        self.player.advance(now - self._played_at)
        self._played_at = now
        if self.player.index != index or self.player.playing:
            self._show_player()

    def _moved(self) -> None:
        """After a jump: the whole screen at once, not a part a tick."""
        self._played_at = time.monotonic()
        self._show_player()
        self._drawn.clear()
        for _ in range(4):
            self._render_latest()

    def _show_player(self) -> None:
        player = self.player
        span = player.end - player.start
        done = (player.elapsed - player.start) / span if span > 0 else 1.0
        filled = round(done * SCRUBBER_WIDTH)
        line = Text()
        line.append(" ▶ PLAYING " if player.playing else " ❚❚ PAUSED ", style="bold reverse")
        line.append(f" ×{player.speed:g}  {player.elapsed:5.1f} s of {player.end:.1f} s  ")
        line.append("━" * filled, style="bold")
        line.append("─" * (SCRUBBER_WIDTH - filled), style="dim")
        if player.kind is not None:
            line.append(f"  n: next {player.kind}")
        recording = player.recording
        line.append(f"  ·  {recording.path.name}, recorded {recording.recorded_at}", style="dim")
        if recording.broker:
            line.append(f" on {recording.broker}", style="dim")
        self.query_one("#player", Static).update(line)

    # -- the history, rebuilt from the frames --------------------------------

    def _remember(self, snapshot: RunSnapshot) -> bool:
        index = self.player.index
        went_back = index < self._fed
        if went_back:
            self.history = RunHistory()
            self._fed, self._sampled_second = -1, None
        fresh = False
        for at in range(self._fed + 1, index + 1):
            frame = self.player.recording.frames[at]
            # The events written with the frame first (those its tail no longer carries among them): seq order.
            fresh |= self.history.add_events(self._written.get(at, ()))
            fresh |= self.history.add(frame)
            second = int(frame.elapsed)
            if second != self._sampled_second:  # one trend point a recorded second, as live
                self._sampled_second = second
                self.history.sample(frame)
        self._fed = index
        return fresh or went_back

    def _sample(self, snapshot: RunSnapshot) -> None:
        pass  # _remember samples by recorded time, whatever the speed

    @property
    def broker(self) -> str:
        """The broker the run was recorded on: a report of a frame names it, not the replay's stand-in."""
        return self.player.recording.broker

    # -- keys ----------------------------------------------------------------

    def action_play(self) -> None:
        self.player.toggle()
        self._moved()

    def action_seek(self, seconds: float) -> None:
        self.player.seek(self.player.elapsed + seconds)
        self._moved()

    def action_speed(self, steps: int) -> None:
        self.player.faster(steps)
        self._show_player()

    def action_next_kind(self) -> None:
        if self.player.kind is None:
            self.notify("This recording has no events.")
            return
        self.player.next_kind()
        self._show_player()

    def action_next_event(self) -> None:
        if self.player.kind is None:
            self.notify("This recording has no events.")
        elif not self.player.next_event():
            self.notify(f"No {self.player.kind} event after {self.player.elapsed:.1f} s (k: another kind).")
        else:
            self.player.playing = False  # stop on it, so it can be read
            self._moved()
