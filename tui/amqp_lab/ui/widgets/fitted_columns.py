"""A table as wide as its box: when its columns are wider, the named text columns give way (widest first, down to
a floor) and their cells end in an ellipsis; figures keep their width. No column runs off the edge unseen."""

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
    when there is room. Content widths are measured as the rows were added: call after adding them."""
    width = table.scrollable_content_region.width - 1  # DataTable keeps a column for its cursor past the last
    if width <= 0:
        return
    columns = [table.columns[ColumnKey(key)] for key in giving if ColumnKey(key) in table.columns]
    natural = {column.key: needed(table, column) for column in columns}  # measured here: the table measures late
    for column in columns:
        column.auto_width = False
        column.width = natural[column.key]
    # Every column as its content asks, measured here: the table measures new rows only when idle.
    padding = 2 * table.cell_padding
    others = sum(needed(table, c) + padding for c in table.ordered_columns if c.key not in natural)
    excess = others + sum(natural[c.key] + padding for c in columns) - width
    for column in columns:
        if excess <= 0:
            break
        cut = min(excess, max(natural[column.key] - FLOOR, 0))
        column.width = natural[column.key] - cut
        excess -= cut
    table.refresh()


def needed(table: DataTable[Any], column: Column) -> int:
    """The width a column's label and cells ask for."""
    cells = (cell.cell_len if isinstance(cell, Text) else len(str(cell)) for cell in table.get_column(column.key))
    return max(column.label.cell_len, max(cells, default=0))
