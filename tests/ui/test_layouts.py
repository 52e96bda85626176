"""Every screen at the five sizes a presenter meets: 80x24, 100x30, 120x36, 160x48, 200x60.

Each is a snapshot (regenerate with `pytest tests/ui --snapshot-update`, then look at them), and before the
snapshot is taken the test checks what a snapshot could hide: the footer's keys fit its width with `?` among
them, no table column runs past its table's edge, and no figure column is narrowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from amqp_lab.scenario.files import load
from amqp_lab.ui.app import AmqpLabApp
from amqp_lab.ui.screens.builder import BuilderScreen
from amqp_lab.ui.screens.help import HelpScreen
from amqp_lab.ui.screens.queue import QueueScreen
from amqp_lab.ui.screens.run import LiveRunScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter, taken
from amqp_lab.ui.widgets.keyed_table import KeyedTable
from amqp_lab.workshop import experiment
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

from tests.conftest import wait_for
from tests.ui.frozen_broker import SLOW, frozen_broker_lab
from tests.ui.test_snapshots import (
    every_part_drawn,
    frozen_lab,
    redraw_tables,
    settled,
    steady_cursors,
    tables_measured,
)

SIZES = [(80, 24), (100, 30), (120, 36), (160, 48), (200, 60)]
TEXT_COLUMNS = {"name", "vhost", "leader", "client", "detail", "connection", "client's name", "user", "channel",
                "queue", "consumer"}  # fmt: skip


def fits(app: AmqpLabApp) -> None:
    """What the user would see cut, said as a failure."""
    screen = app.screen
    for footer in screen.query(FittingFooter):
        keys = list(footer.query_children(FooterKey))
        assert sum(taken(key) for key in keys) <= footer.size.width, [key.description for key in keys]
        if screen.is_modal:  # a dialog's footer: how to leave it
            assert any(key.key == "escape" for key in keys), "the dialog's footer lost Esc"
        else:
            assert any(key.action in ("help", "app.help") for key in keys), "the footer lost ? Help"
    for table in screen.query(DataTable):
        if not table.row_count or not table.size.width:  # empty, or in a tab not shown
            continue
        used = sum(column.get_render_width(table) for column in table.ordered_columns)
        assert used <= table.scrollable_content_region.width, f"{table.id}: {used} columns in {table.size.width}"
        for column in table.ordered_columns:
            if str(column.key.value) not in TEXT_COLUMNS:  # a figure: never narrower than what it shows
                cells = [cell.cell_len for cell in table.get_column(column.key)]
                shown = column.content_width if column.auto_width else column.width
                assert shown >= max(cells, default=0), f"{table.id}: {column.key.value} cut"


def scene(open_screen: Callable[[Pilot[None]], Awaitable[None]]) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_screen(pilot)
        steady_cursors(pilot.app)
        app = pilot.app
        assert isinstance(app, AmqpLabApp)
        await wait_for(lambda: tables_measured(app), what="the tables measured")  # they measure when idle
        redraw_tables(app)
        await pilot.pause()
        fits(app)

    return run_before


async def explorer(pilot: Pilot[None], tab: str = "1") -> None:
    await pilot.pause()
    await pilot.press(tab)
    await pilot.pause()
    await pilot.pause()


async def queue_detail(pilot: Pilot[None]) -> None:
    await explorer(pilot)
    app = pilot.app
    await app.push_screen(QueueScreen(SLOW.vhost, SLOW.name))
    await wait_for(lambda: app.screen.query_one(KeyedTable).row_count == 2, what="the queue's consumers")
    await pilot.pause()


async def live_run(pilot: Pilot[None], workshop: bool = False) -> None:
    await settled(pilot)
    app = pilot.app
    assert isinstance(app, AmqpLabApp)
    found = experiment("load-spike") if workshop else None
    await app.push_screen(LiveRunScreen(found.scenario() if found else load("workers"), found))
    await wait_for(lambda: every_part_drawn(app), what="the frozen run shown")
    redraw_tables(app)
    await pilot.pause()


async def help_screen(pilot: Pilot[None]) -> None:
    await settled(pilot)
    await pilot.app.push_screen(HelpScreen())
    await pilot.pause()


async def builder(pilot: Pilot[None]) -> None:
    await settled(pilot)
    await pilot.app.push_screen(BuilderScreen("pub-sub"))
    await wait_for(lambda: bool(pilot.app.screen.query("#forms Input")), what="the builder's options")
    await pilot.pause()


SCREENS: dict[str, tuple[Callable[[], Any], Callable[[Pilot[None]], Awaitable[None]]]] = {
    "queues": (frozen_broker_lab, explorer),
    "connections": (frozen_broker_lab, lambda pilot: explorer(pilot, "3")),
    "exchanges": (frozen_broker_lab, lambda pilot: explorer(pilot, "2")),
    "channels": (frozen_broker_lab, lambda pilot: explorer(pilot, "4")),
    "consumers": (frozen_broker_lab, lambda pilot: explorer(pilot, "5")),
    "queue-detail": (frozen_broker_lab, queue_detail),
    "live-run": (frozen_lab, live_run),
    "workshop": (frozen_lab, lambda pilot: live_run(pilot, workshop=True)),
    "help": (frozen_lab, help_screen),
    "builder": (frozen_lab, builder),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", SCREENS)
def test_every_screen_fits_every_size(snap_compare, name: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    make, open_screen = SCREENS[name]
    assert snap_compare(make(), terminal_size=size, run_before=scene(open_screen))
