"""The live run's header line: the run, its state and its ledger's figures, in parts that a narrow screen puts on
lines of their own, never cut off and never broken inside a part (`outstanding` on one line, its figure on the
next, or a figure past the right edge, where a projector's audience cannot see it is missing)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import Static

Part = tuple[str, Text]  # the gap before it on its line (none at a line's start), and the part


def fold(parts: Sequence[Part], width: int) -> Text:
    """The parts one after another, a part that would run past `width` starting a line instead (a part longer
    than a line is left for the widget to wrap)."""
    line = Text()
    used = 0
    for gap, part in parts:
        if used and used + len(gap) + part.cell_len > width:
            line.append("\n")
            used = 0
        if used:
            line.append(gap)
            used += len(gap)
        line.append_text(part)
        used += part.cell_len
    return line


class RunHeader(Static):
    """Shows its parts folded to its width; again when that changes."""

    _parts: tuple[Part, ...] = ()  # what it shows, to fold again at a new width
    _lines = 1  # the lines they took: only a new number needs a layout of the screen

    def show(self, *parts: Part) -> None:
        self._parts = parts
        width = self.content_size.width or 10**6  # before the first layout: at once, folded after it
        text = fold(parts, width)
        lines = sum(max(1, math.ceil(cell_len(line) / width)) for line in text.plain.split("\n"))
        self.update(text, layout=lines != self._lines)  # the same height: no layout of the screen each second
        self._lines = lines

    def on_resize(self, event: events.Resize) -> None:
        if self._parts:
            self.show(*self._parts)
