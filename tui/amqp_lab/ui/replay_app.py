"""`amqp-lab replay`: the live run screen on a recording, with no broker. The app offers what `ui.lab.Lab` promises;
the run it shows is the player's current frame, and the controls that would change a run are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App

from amqp_lab.broker.connection import ConnectionStatus
from amqp_lab.broker.errors import ManagementUnavailable
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.poller import BrokerSnapshot, ManagementPoller
from amqp_lab.config import Settings, build
from amqp_lab.engine.recording import Recording
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Control
from amqp_lab.scenario.model import Scenario
from amqp_lab.ui.player import Player
from amqp_lab.ui.screens.replay import ReplayScreen
from amqp_lab.ui.themes import THEMES
from amqp_lab.workshop import Experiment

NO_BROKER = "a replay has no broker: it shows what was recorded"


class ReplayApp(App[None]):
    TITLE = "amqp-lab replay"
    CSS_PATH = Path(__file__).parent / "styles" / "app.tcss"

    def __init__(self, recording: Recording, theme: str = "lab-dark") -> None:
        super().__init__()
        for lab_theme in THEMES:
            self.register_theme(lab_theme)
        self.theme = theme
        self.player = Player(recording)
        # Nothing connects: the settings only name the recorded broker for the status bar and an export.
        self._settings = build({"amqp_url": "amqp://127.0.0.1:1/", "management_url": "", "read_only": True})
        self.export_dir = Path.cwd()

    def on_mount(self) -> None:
        # Over an empty screen: leaving the replay screen (Esc) leaves the app.
        self.push_screen(ReplayScreen(self.player), callback=lambda _: self.exit())

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def management(self) -> ManagementClient:
        raise ManagementUnavailable(NO_BROKER)

    @property
    def poller(self) -> ManagementPoller | None:
        return None

    @property
    def snapshot(self) -> BrokerSnapshot | None:
        return None

    @property
    def amqp_status(self) -> ConnectionStatus | None:
        return None

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

    def want(self, **changes: Any) -> None:
        pass

    def begin_run(self, scenario: Scenario) -> None:
        pass

    @property
    def recording(self) -> Path | None:
        return None

    def record(self, on: bool) -> Path | None:
        self.notify("This is a recording already.", severity="warning")
        return None

    async def run_started(self) -> None:
        pass

    def run_control(self, control: Control) -> None:
        self.notify(NO_BROKER, severity="warning")

    async def end_run(self) -> None:
        pass

    def open_run(self, scenario: Scenario, experiment: Experiment | None = None) -> None:
        self.notify(NO_BROKER, severity="warning")
