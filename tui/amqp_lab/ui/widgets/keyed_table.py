"""A DataTable whose rows are keyed and updated in place: never cleared and refilled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from amqp_lab.ui.widgets.fitted_columns import clipped, fit_columns


class KeyedTable(DataTable[Text]):
    """`show()` adds, updates cell by cell, and removes rows by key."""

    def __init__(
        self,
        columns: Sequence[str],
        giving: Sequence[str] = (),
        folding: Sequence[str] = (),
        narrow: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._all = tuple(columns)
        self._giving = tuple(giving)  # text columns that narrow (with an ellipsis) when the table is too wide
        self._folding, self._narrow = tuple(folding), narrow  # columns left out under `narrow` columns of width
        self._columns = self._all
        self._shown: dict[str, tuple[Text, ...]] = {}  # every column's cell, shown or folded

    def on_mount(self) -> None:
        for column in self._columns:
            self.add_column(column, key=column)

    def _cells(self, row: tuple[Text, ...]) -> list[Text]:
        return [clipped(cell) for column, cell in zip(self._all, row, strict=True) if column in self._columns]

    def show(self, rows: Mapping[str, tuple[Text, ...]]) -> None:
        self._fold()
        for key in [k for k in self._shown if k not in rows]:
            self.remove_row(key)
            del self._shown[key]
        for key, row in rows.items():
            before = self._shown.get(key)
            if before is None:
                self.add_row(*self._cells(row), key=key)
            else:
                for column, old, new in zip(self._all, before, row, strict=True):
                    if old != new and column in self._columns:
                        self.update_cell(key, column, clipped(new), update_width=True)
            self._shown[key] = row
        fit_columns(self, self._giving)

    def on_resize(self) -> None:
        self._fold()
        fit_columns(self, self._giving)

    def on_show(self) -> None:
        self.call_after_refresh(self.on_resize)  # a tab shown: laid out at its width only now

    def _fold(self) -> None:
        """The columns that fit this width (a table in a tab not shown yet has none: it waits to be shown)."""
        if not self.size.width:
            return
        folded = self.size.width < self._narrow
        wanted = tuple(c for c in self._all if not (folded and c in self._folding))
        if wanted != self._columns:  # the rows again, with the columns that fit
            self._columns = wanted
            self.clear(columns=True)
            for column in wanted:
                self.add_column(column, key=column)
            for key, row in self._shown.items():
                self.add_row(*self._cells(row), key=key)

    def row_shown(self, key: str) -> tuple[Text, ...] | None:
        return self._shown.get(key)

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
