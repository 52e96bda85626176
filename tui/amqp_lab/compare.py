"""Two recorded runs side by side: the settings that differ, then each figure of both, its change and whether that
change is for the better. Figures come from each run's last frame: what its screen and its report showed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from amqp_lab.engine.recording import Recording
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.figures import COUNTS

Better = Literal["higher", "lower", "neither"]
# The ledger's figures of something that went wrong; its totals (published, acked, ...) follow from the run's
# length and rate, so the rates carry the verdict on throughput.
LEDGER_PROBLEMS = frozenset(
    {"nacked", "returned", "refused", "unroutable", "redelivered", "requeued", "rejected", "dead_lettered",
     "expired", "discarded", "duplicates", "lost", "unchecked"}
)  # fmt: skip
# Counters of trouble: what `[expect]` may hold, and reconnections.
COUNTER_PROBLEMS = frozenset(str(c) for c, info in COUNTS.items() if info.expectable or info.outage)


@dataclass(frozen=True)
class SettingChange:
    key: str  # dotted, as --set takes it
    a: Any
    b: Any


@dataclass(frozen=True)
class FigureChange:
    figure: str
    a: float | None  # None: the run has no such figure (no sample)
    b: float | None
    better: Better

    @property
    def change(self) -> float | None:
        """b against a, as a fraction (+0.25: a quarter more); None where either has no figure or a is 0."""
        if self.a is None or self.b is None or self.a == 0:
            return None
        return (self.b - self.a) / self.a

    @property
    def verdict(self) -> str:
        """ "better", "worse" or "same", as the figure's direction has it; "" where neither way is better."""
        if self.a is None or self.b is None or self.better == "neither":
            return ""
        if self.a == self.b:
            return "same"
        return "better" if (self.b > self.a) == (self.better == "higher") else "worse"


def _leaves(document: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(document, Mapping):
        for key, value in document.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, document


def setting_changes(a: Recording, b: Recording) -> list[SettingChange]:
    left = dict(_leaves(a.scenario.model_dump(mode="json", by_alias=True)))
    right = dict(_leaves(b.scenario.model_dump(mode="json", by_alias=True)))
    keys = [*left, *(k for k in right if k not in left)]
    return [SettingChange(k, left.get(k), right.get(k)) for k in keys if left.get(k) != right.get(k)]


def _figures(s: RunSnapshot) -> dict[str, tuple[float, Better]]:
    seconds = max(s.elapsed, 1e-9)
    figures: dict[str, tuple[float, Better]] = {
        "run time (s)": (s.elapsed, "neither"),
        "published/s": (s.ledger.published / seconds, "higher"),
        "acked/s": (s.ledger.acked / seconds, "higher"),
    }
    for meter, p in s.latency_total.items():
        if p.count:  # no sample: no figure, not a zero
            for name, value in (("p50", p.p50), ("p95", p.p95), ("p99", p.p99), ("max", p.max)):
                figures[f"{meter} latency {name} (ms)"] = (value, "lower")
    for name, value in s.ledger.as_dict().items():
        figures[f"ledger {name}"] = (value, _better(name, LEDGER_PROBLEMS))
    for name, value in s.counters.items():
        figures[name] = (value, _better(name, COUNTER_PROBLEMS))
    return figures


def _better(name: str, problems: frozenset[str]) -> Better:
    return "lower" if name in problems else "neither"


def figure_changes(a: Recording, b: Recording) -> list[FigureChange]:
    left, right = _figures(a.frames[-1]), _figures(b.frames[-1])
    changes = []
    for name in [*left, *(k for k in right if k not in left)]:
        va, vb = left.get(name), right.get(name)
        if not (va and va[0]) and not (vb and vb[0]):
            continue  # nothing in either: a row of zeros says nothing
        better = (va or vb or (0.0, "neither"))[1]
        changes.append(FigureChange(name, va and va[0], vb and vb[0], better))
    return changes


def as_document(a: Recording, b: Recording) -> dict[str, Any]:
    return {
        "a": {"file": str(a.path), "title": a.scenario.title, "notes": list(a.notes)},
        "b": {"file": str(b.path), "title": b.scenario.title, "notes": list(b.notes)},
        "settings": [{"key": c.key, "a": c.a, "b": c.b} for c in setting_changes(a, b)],
        "figures": [
            {"figure": f.figure, "a": f.a, "b": f.b, "change": f.change, "better": f.better, "verdict": f.verdict}
            for f in figure_changes(a, b)
        ],
    }


def _number(value: float | None) -> str:
    if value is None:
        return "no sample"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def as_tables(a: Recording, b: Recording) -> Group:
    settings = Table(title="what differs in the scenarios", title_justify="left", header_style="bold", box=None)
    for column in ("setting", f"A {a.path.name}", f"B {b.path.name}"):
        settings.add_column(column)
    for setting in setting_changes(a, b):
        settings.add_row(setting.key, str(setting.a), str(setting.b))
    if not settings.rows:
        settings.add_row(Text("(none: the same scenario twice)", style="dim"), "", "")
    figures = Table(title="figures at the end of each run", title_justify="left", header_style="bold", box=None)
    for column, justify in (("figure", "left"), ("A", "right"), ("B", "right"), ("change", "right"), ("", "left")):
        figures.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in figure_changes(a, b):
        shown = "" if f.change is None else "±0%" if abs(f.change) < 0.005 else f"{f.change:+.0%}"
        verdict = Text(f.verdict, style={"better": "green", "worse": "bold red"}.get(f.verdict, "dim"))
        figures.add_row(f.figure, _number(f.a), _number(f.b), shown, verdict)
    notes = [Text(f"{r.path.name}: {note}", style="yellow") for r in (a, b) for note in r.notes]
    return Group(settings, Text(), figures, *notes)
