"""The clients of a run: role, state, counts and rate, one row per client, updated in place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from amqp_lab.engine.clients import ClientStats
from amqp_lab.ui.colors import BAD, GOOD, WARN
from amqp_lab.ui.text import rate

COLUMNS = ("client", "role", "state", "sent", "received", "rate/s", "unacked", "detail")
STATE_STYLES = {
    "running": GOOD,
    "paused": WARN,
    "slow": WARN,
    "rejecting": WARN,
    "hung": BAD,
    "crashed": BAD,
    "failed": BAD,
    "stopped": "dim",
}


def cells(client: ClientStats, stalled: bool) -> tuple[Text, ...]:
    state = client.state
    if stalled and state == "running":
        state = "stalled"  # holds unacked messages and takes nothing new: what a hang looks like from outside
    number = lambda n: Text(f"{n:,}", justify="right")  # noqa: E731
    return (
        Text(client.name, style="bold"),
        Text(client.role),
        Text(state, style=STATE_STYLES.get(state, BAD)),
        number(client.sent),
        number(client.received),
        Text(rate(client.rate), justify="right"),
        number(client.unacked),
        Text(client.detail, style="italic"),
    )


class ClientsTable(DataTable[Text]):
    """`show()` updates rows by client name; the cursor row is the client the fault keys act on."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: dict[str, tuple[Text, ...]] = {}

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column, key=column)

    def show(self, clients: Iterable[ClientStats], stalled: set[str]) -> None:
        wanted = {c.name: cells(c, c.name in stalled) for c in clients}
        for name in [n for n in self._shown if n not in wanted]:
            self.remove_row(name)
            del self._shown[name]
        for name, row in wanted.items():
            before = self._shown.get(name)
            if before is None:
                self.add_row(*row, key=name)
            else:
                for column, old, new in zip(COLUMNS, before, row, strict=True):
                    if old != new:
                        self.update_cell(name, column, new)
            self._shown[name] = row

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def state_of(self, name: str) -> str | None:
        """The state as the table shows it (stalled included), or None for a client it does not list."""
        row = self._shown.get(name)
        return row[2].plain if row else None
