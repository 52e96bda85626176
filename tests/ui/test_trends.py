"""A trend draws what its samples say: no sample draws nothing, a lone one a flat line, never a full bar; and its
width stands for its whole window, however few samples there are yet."""

from __future__ import annotations

import math

from amqp_lab.ui.widgets.trends import Trend
from textual.app import App, ComposeResult
from textual.widgets import Sparkline

FULL = "█"
SPAN = 120  # points the width stands for: two minutes, one a second


class TrendApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Trend("ready", "ready", SPAN)


async def drawn(points: list[float | None]) -> str:
    app = TrendApp()
    async with app.run_test(size=(60, 5)) as pilot:
        await pilot.pause()  # drawn before its first sample, as on a screen that waits for its first answer
        app.query_one(Trend).show(points)
        await pilot.pause()
        return app.query_one(Sparkline).render_line(0).text


async def test_a_lone_sample_draws_a_flat_line_and_no_sample_nothing() -> None:
    lone = await drawn([0.0])
    assert FULL not in lone and lone.strip() != ""
    assert (await drawn([])).strip() == ""
    assert FULL not in await drawn([None])
    assert FULL not in await drawn([0.0, 0.0, 0.0])


async def test_a_rise_still_reaches_the_top() -> None:
    assert FULL in await drawn([0.0, 5.0, 10.0])


async def test_the_width_stands_for_the_whole_window_as_it_fills() -> None:
    """Two seconds of a queue were drawn as long a line as two minutes: they are now a sliver at the right end."""
    early = await drawn([1.0, 2.0])
    width = len(early)
    assert width > 20
    assert len(early.lstrip(" ")) == max(2, math.ceil(width * 2 / SPAN))  # two seconds, at the newest end
    half = await drawn([1.0] * (SPAN // 2))
    assert len(half.lstrip(" ")) == math.ceil(width / 2)
    full = await drawn([float(n % 7) for n in range(SPAN)])
    assert len(full) == width and not full.startswith(" ")


async def test_a_trend_before_its_first_sample_draws_nothing() -> None:
    app = TrendApp()
    async with app.run_test(size=(60, 5)) as pilot:
        await pilot.pause()
        assert app.query_one(Sparkline).render_line(0).text.strip() == ""
