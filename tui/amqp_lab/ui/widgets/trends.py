"""Throughput, latency percentiles and queue depths over the last two minutes, one sparkline each."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Sparkline, Static

from amqp_lab.ui.history import RunHistory

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


class Trend(Horizontal):
    def __init__(self, name: str, label: str) -> None:
        super().__init__(classes="trend")
        self.series_name = name
        self.label = label
        self.points: list[float | None] = []

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="trend-label")
        yield Sparkline(_drawn(self.points), summary_function=max)
        yield Static(_last(self.points), classes="trend-value")

    def show(self, points: list[float | None]) -> None:
        self.points = points
        if self.is_mounted:
            self.query_one(Sparkline).data = _drawn(points)
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
                found = Trend(name, label)
                found.show(list(history.series[name].points))
                self.mount(found)
            else:
                found.show(list(history.series[name].points))
