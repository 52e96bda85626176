"""A trend draws what its samples say: no sample or a lone one is a flat line, never a full bar."""

from __future__ import annotations

from amqp_lab.ui.widgets.trends import Trend
from textual.app import App, ComposeResult
from textual.widgets import Sparkline

FULL = "█"


class TrendApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Trend("ready", "ready")


async def drawn(points: list[float | None]) -> str:
    app = TrendApp()
    async with app.run_test(size=(60, 5)) as pilot:
        app.query_one(Trend).show(points)
        await pilot.pause()
        return app.query_one(Sparkline).render_line(0).text


async def test_a_lone_sample_and_no_sample_draw_flat_lines() -> None:
    assert FULL not in await drawn([0.0])
    assert FULL not in await drawn([])
    assert FULL not in await drawn([None])
    assert FULL not in await drawn([0.0, 0.0, 0.0])


async def test_a_rise_still_reaches_the_top() -> None:
    assert FULL in await drawn([0.0, 5.0, 10.0])
