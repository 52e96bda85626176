"""A screen hosted by a bare app that offers only what ui.lab.Lab promises: no broker, no run process, no
AmqpLabApp. The live run screen shows the snapshot it is given and turns each key into the typed control."""

from __future__ import annotations

from dataclasses import replace

from amqp_lab.engine.remote import RunEnded
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Control, Inject, PauseProducers, ResumeProducers, StopRun
from amqp_lab.scenario.files import load
from amqp_lab.scenario.model import Scenario
from amqp_lab.ui.lab import Lab
from amqp_lab.ui.offline import OfflineLab
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable
from amqp_lab.workshop import Experiment

from tests.conftest import shown_text, wait_for
from tests.ui.test_snapshots import FROZEN


class BareLab(OfflineLab):
    """The Lab protocol and nothing more: a run's snapshot handed in, the controls a screen sends recorded."""

    def __init__(self, snapshot: RunSnapshot) -> None:
        super().__init__()
        self._snapshot = snapshot
        self.run_latest: RunSnapshot | None = None
        self.run_ended: RunEnded | None = None
        self.controls: list[Control] = []

    @property
    def run_is_going(self) -> bool:
        return self.run_latest is not None and self.run_ended is None

    def begin_run(self, scenario: Scenario) -> None:
        self.run_latest = self._snapshot

    def run_control(self, control: Control) -> None:
        self.controls.append(control)

    def open_run(self, scenario: Scenario, experiment: Experiment | None = None) -> None:
        self.push_screen(LiveRunScreen(scenario, experiment))


async def test_the_live_run_screen_needs_no_broker_to_show_a_run_and_take_its_controls() -> None:
    lab = BareLab(replace(FROZEN, run_id="0a1b2c"))
    offered = set(dir(BareLab)) | set(vars(lab))
    assert [member for member in vars(Lab) if not member.startswith("_") and member not in offered] == []
    async with lab.run_test(size=(120, 34)) as pilot:
        lab.open_run(load("workers", []))
        await pilot.pause()
        table = lab.screen.query_one(ClientsTable)
        await wait_for(lambda: "worker-2" in shown_text(table), what="the clients of the snapshot on screen")
        assert "hung" in shown_text(table)  # worker-2's state, as the snapshot has it

        await pilot.press("space")
        await pilot.press("space")
        table.focus()
        await pilot.press("down")  # the second client: worker-1
        await pilot.press("x")
        await pilot.press("s")
        await pilot.pause()
        assert lab.controls == [PauseProducers(), ResumeProducers(), Inject("worker-1", "crash"), StopRun()]
