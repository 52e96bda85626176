"""Projector mode: P (or --present) shows five figures large, the flow and the events in the projector theme, the
run going on and taking its controls; P again brings every panel and the theme back."""

from __future__ import annotations

from dataclasses import replace

from amqp_lab.scenario.controls import PauseProducers
from amqp_lab.scenario.files import load
from amqp_lab.ui.screens.run import LiveRunScreen
from textual.pilot import Pilot
from textual.widgets import Digits

from tests.conftest import wait_for
from tests.ui.test_replay import StyledBareLab
from tests.ui.test_snapshots import FROZEN

SIZE = (120, 36)


def figure(lab: StyledBareLab, key: str) -> str:
    """What a large figure shows ("" before the screen has it)."""
    found = lab.screen.query(f"#{key}").results(Digits)
    return next((str(digits.value) for digits in found), "")


async def test_projector_mode_shows_the_figures_large_and_keeps_the_run() -> None:
    lab = StyledBareLab(FROZEN)
    async with lab.run_test(size=SIZE) as pilot:
        lab.open_run(load("workers", []))
        await wait_for(lambda: isinstance(lab.screen, LiveRunScreen), what="the run screen")
        screen = lab.screen
        await pilot.press("P")
        assert screen.has_class("-present") and lab.theme == "lab-projector"
        await wait_for(lambda: figure(lab, "published-rate") == "50", what="the figures drawn")
        # The snapshot's own figures: rates, p99 of the delivery latency, lost, and the workers' problem.
        assert figure(lab, "acked-rate") == f"{FROZEN.rates['acked']:,.0f}"
        assert figure(lab, "p99") == f"{FROZEN.latency['delivery'].p99:,.0f}"
        assert figure(lab, "lost") == "0"
        assert figure(lab, "problem") == f"{FROZEN.ledger.redelivered}"
        assert not any(screen.query_one(part).display for part in ("#clients", "#run-side", "#timeouts"))
        assert screen.query_one("#flow").display and screen.query_one("#event-log").display

        await pilot.press("space")  # the run's controls still work
        await pilot.press("P")
        assert not screen.has_class("-present") and lab.theme == "lab-dark"
        assert all(screen.query_one(part).display for part in ("#clients", "#run-side", "#timeouts"))
    assert lab.controls == [PauseProducers()]


async def test_a_run_without_a_latency_sample_says_so_in_projector_mode() -> None:
    lab = StyledBareLab(replace(FROZEN, latency={}))
    async with lab.run_test(size=SIZE) as pilot:
        lab.open_run(load("workers", []))
        await wait_for(lambda: isinstance(lab.screen, LiveRunScreen), what="the run screen")
        await pilot.press("P")
        label = lab.screen.query_one("#p99-label")
        await wait_for(lambda: "(no sample)" in str(label.render()), what="the no-sample label")
        assert figure(lab, "p99") == "-"


class PresentingLab(StyledBareLab):
    @property
    def presenting(self) -> bool:
        return True


def test_present_opens_runs_in_projector_mode(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def opened(pilot: Pilot[None]) -> None:
        lab = pilot.app
        assert isinstance(lab, PresentingLab)
        lab.open_run(load("workers", []))
        await wait_for(lambda: isinstance(lab.screen, LiveRunScreen), what="the run screen")
        await wait_for(lambda: figure(lab, "published-rate") == "50", what="the figures drawn")
        screen = lab.screen
        assert isinstance(screen, LiveRunScreen)
        await wait_for(lambda: len(screen._drawn) == 4, what="every part drawn, the events too")
        lab.clear_notifications()
        await pilot.pause()

    assert snap_compare(PresentingLab(FROZEN), terminal_size=SIZE, run_before=opened)
