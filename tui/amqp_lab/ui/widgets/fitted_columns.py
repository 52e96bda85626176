"""A table as wide as its box: when its columns are wider, the named text columns give way (in the order named,
down to a floor) and their cells end in an ellipsis; figures keep their width. No column runs off the edge unseen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import Column, ColumnKey

FLOOR = 8  # columns a name keeps however narrow the table: "orders.…"


def clipped(cell: Text) -> Text:
    """A cell that ends in an ellipsis where its column is capped, instead of stopping mid-word."""
    cell.no_wrap, cell.overflow = True, "ellipsis"
    return cell


def fit_columns(table: DataTable[Any], giving: Sequence[str]) -> None:
    """Set every column's width: as its content asks, with the `giving` columns capped, in their order, so that
    every column fits the table's width. Call after adding or updating rows; the table is redrawn only when a
    width changed."""
    width = table.scrollable_content_region.width - 1  # DataTable keeps a column for its cursor past the last
    if width <= 0:
        return
    # Every column as its content asks, measured here: the table measures new rows only when idle, and widens a
    # column then without redrawing the lines it has cached, so every width is fixed here instead.
    widths = {column.key: needed(table, column) for column in table.ordered_columns}
    excess = sum(widths.values()) + 2 * table.cell_padding * len(widths) - width
    for key in (ColumnKey(key) for key in giving):
        if key in widths:
            cut = min(max(excess, 0), max(widths[key] - FLOOR, 0))
            excess -= cut
            widths[key] -= cut
    changed = False
    for column in table.ordered_columns:
        if column.auto_width or column.width != widths[column.key]:
            column.auto_width, column.width, changed = False, widths[column.key], True
    if changed:
        table._clear_caches()  # its lines are cached by position and update count: a width set here is neither
        table.refresh()


def needed(table: DataTable[Any], column: Column) -> int:
    """The width a column's label and cells ask for."""
    cells = (cell.cell_len if isinstance(cell, Text) else len(str(cell)) for cell in table.get_column(column.key))
    return max(column.label.cell_len, max(cells, default=0))
