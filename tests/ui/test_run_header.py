"""The live run's header says what the run is doing: paused while producers are held, draining once stopping."""

from __future__ import annotations

from dataclasses import replace

from amqp_lab.scenario.files import load
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.clients_table import ClientsTable

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


async def test_a_worker_added_shows_on_the_next_frame_not_at_its_parts_turn() -> None:
    """The screen redraws one part per frame, each once a second; a live control's part is drawn on every frame
    for a while, so the worker added shows on the first frame after the run's process reports it."""
    app = frozen_lab()
    async with app.run_test(size=(140, 40)) as pilot:
        await settled(pilot)
        screen = LiveRunScreen(load("workers"))
        await app.push_screen(screen)
        table = screen.query_one(ClientsTable)
        await wait_for(lambda: table.row_count == len(FROZEN.clients), what="the run's clients shown")
        for round_ in range(4):  # a report in each of the four parts' turns
            name = f"worker-{4 + round_}"
            await pilot.press("a")
            added = replace(FROZEN.clients[-1], name=name)
            reported_at = screen._tick
            app.run_latest = replace(FROZEN, clients=(*FROZEN.clients, added), elapsed=20.0 + round_)
            await wait_for(lambda name=name: table.row_shown(name) is not None, what=f"{name} shown")
            # The next frame, or the one after on a stalled machine; at its turn it could be four frames on.
            assert screen._tick - reported_at <= 2, "drawn only at its part's turn"
            await pilot.pause(0.25 * (round_ + 1))  # the next report falls in another part's turn


async def test_a_long_header_takes_another_line_between_its_parts_never_cut_off() -> None:
    """A workshop's title and large figures run past a line: the header folds between its parts (the figures
    whole, `outstanding` beside its count), to as many lines as it needs, and again when the terminal is resized."""
    app = frozen_lab()
    title = "A node fails: quorum queues carry on, a classic queue waits"
    figures = "published 1,234,567  acked 1,234,500  outstanding 67"
    async with app.run_test(size=(160, 40)) as pilot:
        await settled(pilot)
        screen = LiveRunScreen(load("workers"))
        await app.push_screen(screen)
        ledger = replace(FROZEN.ledger, published=1_234_567, acked=1_234_500, outstanding=67)
        app.run_latest = replace(FROZEN, title=title, ledger=ledger)
        header = lambda: shown_text(screen.query_one("#run-header")).splitlines()  # noqa: E731
        for width, lines in ((160, 2), (80, 3), (220, 1)):
            await pilot.resize_terminal(width, 40)
            await wait_for(lambda lines=lines: len(header()) == lines, what=f"the header on {lines} line(s)")
            shown = header()
            assert shown[0].strip().startswith(title), shown
            assert any(figures in line for line in shown), shown
            assert shown[-1].endswith(f"rate {screen.rate:g}/s"), shown  # the last part, whole
