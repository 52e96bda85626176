"""The live run's header says what the run is doing: paused while producers are held, draining once stopping."""

from __future__ import annotations

from dataclasses import replace

from amqp_lab.scenario.files import load
from amqp_lab.ui.screens.run import LiveRunScreen

from tests.conftest import shown_text, wait_for
from tests.ui.test_snapshots import FROZEN, frozen_lab, settled


async def test_a_paused_run_that_drains_says_draining() -> None:
    app = frozen_lab()
    async with app.run_test(size=(140, 40)) as pilot:
        await settled(pilot)
        screen = LiveRunScreen(load("workers"))
        await app.push_screen(screen)
        header = lambda: shown_text(screen.query_one("#run-header"))  # noqa: E731
        await wait_for(lambda: "RUNNING" in header(), what="the run shown")
        screen.paused = True  # as space leaves it
        app.run_latest = replace(FROZEN, elapsed=13.0)
        await wait_for(lambda: "PAUSED" in header(), what="paused said")
        app.run_latest = replace(FROZEN, state="draining", elapsed=14.0)  # s: producers stop, consumers drain
        await wait_for(lambda: "DRAINING" in header(), what="draining said")
        assert "PAUSED" not in header()
