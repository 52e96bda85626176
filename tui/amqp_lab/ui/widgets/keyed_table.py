"""A DataTable whose rows are keyed and updated in place: never cleared and refilled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from amqp_lab.ui.widgets.fitted_columns import clipped, fit_columns


class KeyedTable(DataTable[Text]):
    """`show()` adds, updates cell by cell, and removes rows by key."""

    def __init__(self, columns: Sequence[str], giving: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns = tuple(columns)
        self._giving = tuple(giving)  # text columns that narrow (with an ellipsis) when the table is too wide
        self._shown: dict[str, tuple[Text, ...]] = {}

    def on_mount(self) -> None:
        for column in self._columns:
            self.add_column(column, key=column)

    def show(self, rows: Mapping[str, tuple[Text, ...]]) -> None:
        for key in [k for k in self._shown if k not in rows]:
            self.remove_row(key)
            del self._shown[key]
        for key, row in rows.items():
            before = self._shown.get(key)
            if before is None:
                self.add_row(*(clipped(cell) for cell in row), key=key)
            else:
                for column, old, new in zip(self._columns, before, row, strict=True):
                    if old != new:
                        self.update_cell(key, column, clipped(new), update_width=True)
            self._shown[key] = row
        fit_columns(self, self._giving)

    def on_resize(self) -> None:
        fit_columns(self, self._giving)

    def row_shown(self, key: str) -> tuple[Text, ...] | None:
        return self._shown.get(key)

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
