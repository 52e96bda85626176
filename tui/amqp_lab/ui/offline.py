"""An app that hosts the lab's screens without a broker: the parts of `ui.lab.Lab` such an app answers alike (no
management API, no poller, no connection, nothing to record). A subclass says which run it shows and what the
controls do: the replay (`ui.replay_app`), or a test's bare lab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amqp_lab.broker.connection import ConnectionStatus
from amqp_lab.broker.errors import ManagementUnavailable
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.poller import BrokerSnapshot, ManagementPoller
from amqp_lab.config import Settings, build
from amqp_lab.ui.themes import ThemedApp


class OfflineLab(ThemedApp):
    NO_BROKER = "no broker here"

    def __init__(self, theme: str = "lab-dark") -> None:
        super().__init__(theme)
        # Nothing connects: the settings are there for the screens that name a broker.
        self._settings = build({"amqp_url": "amqp://127.0.0.1:1/", "management_url": "", "read_only": True})
        self.export_dir = Path.cwd()

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def management(self) -> ManagementClient:
        raise ManagementUnavailable(self.NO_BROKER)

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
    def presenting(self) -> bool:
        return False

    @property
    def recording(self) -> Path | None:
        return None

    def record(self, on: bool) -> Path | None:
        return None

    def want(self, **changes: Any) -> None:
        pass

    async def run_started(self) -> None:
        pass

    async def end_run(self) -> None:
        pass
