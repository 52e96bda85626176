"""A fitted table draws new rows at their widths in the first frame after they arrive: its columns do not jump
when the table measures them later, and its header is never left at the widths of an earlier frame."""

from __future__ import annotations

from amqp_lab.ui.widgets.keyed_table import KeyedTable
from rich.text import Text
from textual.app import App, ComposeResult

COLUMNS = ("client", "role", "state", "detail")


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, giving=("detail",))


def line(table: KeyedTable, y: int) -> str:
    return table.render_line(y).text


async def test_the_header_keeps_the_rows_widths_after_the_table_measures_them() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(KeyedTable)
        await pilot.pause()
        table.show({"w1": (Text("w-1"), Text("consumer"), Text("running"), Text("prefetch 10 " * 8))})
        first = line(table, 0)  # the header drawn before the table had a moment to itself
        await pilot.pause()  # the table measures its new rows when idle
        header, row = line(table, 0), line(table, 1)
        assert first == header
        assert header.index("role") == row.index("consumer") and header.index("state") == row.index("running")
        assert header.index("detail") == row.index("prefetch")
        assert len(row.rstrip()) <= 60 and row.rstrip().endswith("…")
