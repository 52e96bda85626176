"""`amqp-lab replay`: the live run screen on a recording, with no broker. The run it shows is the player's current
frame; the controls that would change a run are refused."""

from __future__ import annotations

from pathlib import Path

from amqp_lab.engine.recording import Recording
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Control
from amqp_lab.scenario.model import Scenario
from amqp_lab.ui.offline import OfflineLab
from amqp_lab.ui.player import Player
from amqp_lab.ui.screens.replay import ReplayScreen
from amqp_lab.ui.themes import STYLES
from amqp_lab.workshop import Experiment


class ReplayApp(OfflineLab):
    TITLE = "amqp-lab replay"
    CSS_PATH = STYLES
    NO_BROKER = "a replay has no broker: it shows what was recorded"

    def __init__(self, recording: Recording, theme: str = "lab-dark") -> None:
        super().__init__(theme)
        self.player = Player(recording)

    def on_mount(self) -> None:
        # Over an empty screen: leaving the replay screen (Esc) leaves the app.
        self.push_screen(ReplayScreen(self.player), callback=lambda _: self.exit())

    @property
    def run_latest(self) -> RunSnapshot | None:
        return self.player.current

    @property
    def run_ended(self) -> RunEnded | None:
        """How the run ended, once the replay has reached its last frame (as the live screen learnt it then)."""
        return self.player.recording.ended if self.player.at_end else None

    @property
    def run_is_going(self) -> bool:
        return False

    def begin_run(self, scenario: Scenario) -> None:
        pass

    def record(self, on: bool) -> Path | None:
        self.notify("This is a recording already.", severity="warning")
        return None

    def run_control(self, control: Control) -> None:
        self.notify(self.NO_BROKER, severity="warning")

    def open_run(self, scenario: Scenario, experiment: Experiment | None = None) -> None:
        self.notify(self.NO_BROKER, severity="warning")
