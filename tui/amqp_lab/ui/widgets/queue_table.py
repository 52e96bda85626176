"""The queue table: rows keyed by queue and updated in place, sortable by any column."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from amqp_lab.broker.models import QueueStats
from amqp_lab.ui.colors import BAD
from amqp_lab.ui.text import inert, rate
from amqp_lab.ui.widgets.fitted_columns import clipped, fit_columns


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    value: Callable[[QueueStats], Any]  # what sorting compares
    cell: Callable[[QueueStats], Text]  # what the table shows
    numeric: bool = False
    api_field: str = ""  # what the management API sorts by; empty: the key


def _number(get: Callable[[QueueStats], float], show: Callable[[float], str] = str) -> Callable[..., Text]:
    return lambda q: Text(show(get(q)), justify="right")


def members(queue: QueueStats) -> Text:
    """Replicas of a quorum queue or stream, with how many are up; a classic queue has none."""
    if not queue.members:
        return Text("")
    down = len(queue.members) - len(queue.online)
    return Text(f"{len(queue.members)}" + (f" ({down} down)" if down else ""), style=BAD if down else "")


COLUMNS = (
    Column("name", "Name", lambda q: q.name, lambda q: inert(q.name)),
    Column("vhost", "Vhost", lambda q: q.vhost, lambda q: inert(q.vhost)),
    Column("type", "Type", lambda q: q.type, lambda q: inert(q.type)),
    Column("ready", "Ready", lambda q: q.ready, _number(lambda q: q.ready, lambda n: f"{n:,}"), True, "messages_ready"),
    Column(
        "unacked",
        "Unacked",
        lambda q: q.unacked,
        _number(lambda q: q.unacked, lambda n: f"{n:,}"),
        True,
        "messages_unacknowledged",
    ),
    Column("consumers", "Consumers", lambda q: q.consumers, _number(lambda q: q.consumers), True),
    Column(
        "publish",
        "Publish/s",
        lambda q: q.rates.publish,
        _number(lambda q: q.rates.publish, rate),
        True,
        "message_stats.publish_details.rate",
    ),
    Column(
        "deliver",
        "Deliver/s",
        lambda q: q.rates.deliver,
        _number(lambda q: q.rates.deliver, rate),
        True,
        "message_stats.deliver_get_details.rate",
    ),
    Column(
        "ack",
        "Ack/s",
        lambda q: q.rates.ack,
        _number(lambda q: q.rates.ack, rate),
        True,
        "message_stats.ack_details.rate",
    ),
    # Where it lives, last: on one node it says little, and the figures above matter more.
    Column("leader", "Leader", lambda q: q.leader, lambda q: inert(q.leader.partition("@")[0]), api_field="node"),
    Column("members", "Members", lambda q: (len(q.members), len(q.online)), lambda q: members(q)),
)
BY_KEY = {column.key: column for column in COLUMNS}
GIVING = ("leader", "vhost", "name")  # narrowed, with an ellipsis, before any figure is cut
# Under NARROW columns the table keeps the name and the figures: where a queue lives is on its detail screen.
NARROW = 130  # every column and a name of FLOOR columns (fitted_columns) need about that much
NARROW_COLUMNS = tuple(c for c in COLUMNS if c.key not in ("vhost", "type", "leader", "members"))


class QueueTable(DataTable[Text]):
    """Shows QueueStats rows; `show()` applies a new set with the fewest changes."""

    class Sorted(Message):
        """The user chose another sort: the broker should page by it too."""

        def __init__(self, api_field: str, reverse: bool) -> None:
            super().__init__()
            self.api_field = api_field
            self.reverse = reverse

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_key = "name"
        self.sort_reverse = False
        self._shown: dict[str, QueueStats] = {}
        self._names: dict[int, str] = {}  # each row's name cell (by identity): the key of the queue it shows
        self.shown_columns: tuple[Column, ...] = COLUMNS

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for column in self.shown_columns:
            self.add_column(self._label(column), key=column.key)

    def _add_row(self, queue: QueueStats) -> None:
        cells = [clipped(c.cell(queue)) for c in self.shown_columns]
        self._names[id(cells[0])] = queue.key
        self.add_row(*cells, key=queue.key)

    def _label(self, column: Column) -> Text:
        # Every label keeps room for the arrow: DataTable sizes columns once, by their first label.
        arrow = (" ▼" if self.sort_reverse else " ▲") if column.key == self.sort_key else "  "
        return Text(column.label + arrow, justify="right" if column.numeric else "left")

    def show(self, queues: Iterable[QueueStats]) -> None:
        """Add, update and remove rows by key; never clear and refill."""
        wanted = {q.key: q for q in queues}
        for key in [k for k in self._shown if k not in wanted]:
            self.remove_row(key)
            del self._shown[key]
        if len(self._names) > 2 * len(wanted) + 100:  # the cells of rows long removed
            self._names = {n: key for n, key in self._names.items() if key in wanted}
        changed = False
        for key, queue in wanted.items():
            before = self._shown.get(key)
            if before is None:
                self._add_row(queue)
                changed = True
            elif before != queue:
                for column in self.shown_columns[1:]:  # a row's name never changes: it is its key
                    if column.value(before) != column.value(queue):
                        self.update_cell(key, column.key, clipped(column.cell(queue)))
                        changed = changed or column.key == self.sort_key
            self._shown[key] = queue
        if changed:
            self._sort()
        fit_columns(self, GIVING)

    def on_resize(self) -> None:
        wanted = NARROW_COLUMNS if self.size.width < NARROW else COLUMNS
        if wanted is not self.shown_columns:  # the rows again, with the columns that fit
            self.shown_columns = wanted
            self.clear(columns=True)
            self._names.clear()
            self._add_columns()
            for queue in self._shown.values():
                self._add_row(queue)
            self._sort()
        fit_columns(self, GIVING)

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by a column; choosing the current one again flips the order."""
        if reverse is None:
            reverse = not self.sort_reverse if key == self.sort_key else BY_KEY[key].numeric
        self.sort_key, self.sort_reverse = key, reverse
        for column in self.shown_columns:
            self.columns[ColumnKey(column.key)].label = self._label(column)
        self._sort()
        self.post_message(self.Sorted(BY_KEY[key].api_field or key, reverse))

    def next_sort(self) -> None:
        keys = [c.key for c in self.shown_columns]
        self.sort_by(keys[(keys.index(self.sort_key) + 1) % len(keys)])

    def _sort(self) -> None:
        column = BY_KEY[self.sort_key]

        def order(name: Text) -> tuple[Any, str, str]:
            # DataTable hands the key function cells, not row keys: each row's name cell says which queue it is.
            queue = self._shown[self._names[id(name)]]
            # Ties fall back to the name, so equal rows never swap places between refreshes.
            return column.value(queue), queue.name, queue.vhost

        self.sort("name", key=order, reverse=self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))
