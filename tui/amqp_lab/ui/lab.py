"""What a screen may ask of the lab app, typed: the broker's state and clients, the current run and its controls.

Screens reach the app through `lab_of` only, never through untyped attributes of `self.app`, so any app that offers
these (the lab's, or a test's without a broker) can host them; the type checker holds `AmqpLabApp` to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, cast

from textual.dom import DOMNode

from amqp_lab.broker.connection import ConnectionStatus
from amqp_lab.broker.management import ManagementClient
from amqp_lab.broker.poller import BrokerSnapshot, ManagementPoller
from amqp_lab.config import Settings
from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Control
from amqp_lab.scenario.model import Scenario
from amqp_lab.workshop import Experiment


class Lab(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def management(self) -> ManagementClient:
        """For one-off calls (peek, tap, publish); raises ManagementUnavailable (a BrokerError) if there is none."""

    @property
    def poller(self) -> ManagementPoller | None: ...

    @property
    def snapshot(self) -> BrokerSnapshot | None:
        """The management API's latest answer."""

    @property
    def amqp_status(self) -> ConnectionStatus | None: ...

    @property
    def run_latest(self) -> RunSnapshot | None:
        """The current run's latest snapshot, about ten a second."""

    @property
    def run_ended(self) -> RunEnded | None: ...

    @property
    def run_is_going(self) -> bool: ...

    @property
    def export_dir(self) -> Path: ...

    @property
    def presenting(self) -> bool:
        """--present: runs open in projector mode."""

    def want(self, **changes: Any) -> None:
        """Ask the poller for other listings, a filter, a sort (fields of `broker.poller.Wanted`)."""

    def begin_run(self, scenario: Scenario) -> None: ...

    @property
    def recording(self) -> Path | None:
        """Where the current run is being recorded, if it is."""

    def record(self, on: bool) -> Path | None:
        """Record the current run from now on (the file), or stop recording it (None)."""

    async def run_started(self) -> None: ...

    def run_control(self, control: Control) -> None: ...

    async def end_run(self) -> None: ...

    def open_run(self, scenario: Scenario, experiment: Experiment | None = None) -> None: ...


def lab_of(node: DOMNode) -> Lab:
    """The lab app a screen or widget runs in."""
    return cast(Lab, node.app)
