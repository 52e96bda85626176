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
    """Cap the `giving` columns, in their order, so that every column fits the table's width; release the caps
    when there is room. Call after adding rows; the table is redrawn only when a width changed."""
    width = table.scrollable_content_region.width - 1  # DataTable keeps a column for its cursor past the last
    if width <= 0:
        return
    columns = [table.columns[ColumnKey(key)] for key in giving if ColumnKey(key) in table.columns]
    # Every column as its content asks, measured here: the table measures new rows only when idle.
    natural = {column.key: needed(table, column) for column in table.ordered_columns}
    padding = 2 * table.cell_padding
    excess = sum(natural.values()) + padding * len(natural) - width
    changed = False
    for column in columns:
        cut = min(max(excess, 0), max(natural[column.key] - FLOOR, 0))
        excess -= cut
        if column.auto_width or column.width != natural[column.key] - cut:
            column.auto_width, column.width, changed = False, natural[column.key] - cut, True
    if changed:
        table.refresh()


def needed(table: DataTable[Any], column: Column) -> int:
    """The width a column's label and cells ask for."""
    cells = (cell.cell_len if isinstance(cell, Text) else len(str(cell)) for cell in table.get_column(column.key))
    return max(column.label.cell_len, max(cells, default=0))
