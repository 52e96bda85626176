"""Throughput, latency percentiles and queue depths over the last two minutes, one sparkline each."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from rich.console import Console, ConsoleOptions
from rich.segment import Segment
from textual.app import ComposeResult, RenderResult
from textual.containers import Horizontal, VerticalScroll
from textual.renderables.sparkline import Sparkline as SparklineRenderable
from textual.widgets import Sparkline, Static

from amqp_lab.ui.history import POINTS, RunHistory

DEPTH_SERIES = 4  # the deepest queues get a line; the flow diagram shows every queue's depth


def _last(points: Sequence[float | None]) -> str:
    """The newest point, as the number beside its sparkline."""
    if not points:
        return "–"
    value = points[-1]
    if value is None:
        return "no sample"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _drawn(points: Sequence[float | None]) -> list[float]:
    """A second without a sample draws at the bottom; the number beside says "no sample" while it is the newest.
    Fewer than two samples make no trend: a flat line (a sparkline draws a lone point as a full bar, whatever
    its value, and a queue's first 0 read as a full one)."""
    drawn = [0.0 if p is None else p for p in points]
    return drawn if len(drawn) > 1 else (drawn or [0.0]) * 2


def distinct_parts(names: list[str]) -> list[str]:
    """The names without the dotted words they all begin with: subscriber.orders and subscriber.payments are
    orders and payments (a label has 18 columns); a lone name stays whole."""
    if len(names) < 2:
        return names
    words = [name.split(".") for name in names]
    common = 0
    while all(len(w) > common + 1 and w[common] == words[0][common] for w in words):
        common += 1
    return [".".join(w[common:]) for w in words]


class _Indented:
    """A renderable's lines, each after `blank` spaces."""

    def __init__(self, blank: int, inner: SparklineRenderable[float]) -> None:
        self.blank = blank
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        yield Segment(" " * self.blank)
        for segment in console.render(self.inner, options):
            yield segment
            if segment.text == "\n":
                yield Segment(" " * self.blank)


class WindowSparkline(Sparkline):
    """A sparkline whose width stands for its whole window (`span` points): the points so far fill its right
    part, and the time before the first is blank. Textual's stretches whatever points it has over the width:
    a queue watched for two seconds drew a line as long as two minutes of history."""

    def __init__(self, points: Sequence[float | None], span: int) -> None:
        super().__init__(_drawn(points), summary_function=max)
        self.span = span
        self.known = len(points)  # the points drawn may be more: a lone one is drawn twice (see _drawn)

    def show(self, points: Sequence[float | None]) -> None:
        self.known = len(points)
        self.data = _drawn(points)
        self.refresh()  # more samples take more width, even where the values drawn are the same as before

    def render(self) -> RenderResult:
        width = self.size.width
        if not self.known:
            return " " * width  # no sample yet: no line, and no number beside it
        drawn = super().render()
        used = min(width, max(2, math.ceil(width * self.known / self.span)))
        if not isinstance(drawn, SparklineRenderable) or used >= width:
            return drawn
        drawn.width = used
        return _Indented(width - used, drawn)


class Trend(Horizontal):
    def __init__(self, name: str, label: str, span: int) -> None:
        super().__init__(classes="trend")
        self.series_name = name
        self.label = label
        self.span = span  # points the width stands for
        self.points: list[float | None] = []

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="trend-label")
        yield WindowSparkline(self.points, self.span)
        yield Static(_last(self.points), classes="trend-value")

    def show(self, points: list[float | None]) -> None:
        self.points = points
        if self.is_mounted:
            self.query_one(WindowSparkline).show(points)
            self.query_one(".trend-value", Static).update(_last(points), layout=False)


class Trends(VerticalScroll):
    def __init__(self, prefix: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.prefix = prefix

    def show(self, history: RunHistory) -> None:
        queues = sorted(
            (name for name in history.series if name.startswith("queue ")),
            key=lambda name: -max((p or 0.0 for p in history.series[name].points), default=0.0),
        )[:DEPTH_SERIES]
        wanted: list[str] = [
            name for name in ("published/s", "acked/s", "p50 ms", "p95 ms", "p99 ms") if name in history.series
        ]
        wanted += queues
        present = {trend.series_name: trend for trend in self.query(Trend)}
        for name, trend in present.items():
            if name not in wanted:
                trend.remove()
        shown = distinct_parts([name.removeprefix("queue ").removeprefix(self.prefix) for name in queues])
        for name in wanted:
            found = present.get(name)
            if found is None:
                label = "depth " + shown[queues.index(name)] if name in queues else name
                found = Trend(name, label, POINTS)
                found.show(list(history.series[name].points))
                self.mount(found)
            else:
                found.show(list(history.series[name].points))
