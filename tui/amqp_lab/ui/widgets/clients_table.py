"""The clients of a run: role, state, counts and rate, one row per client, updated in place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text

from amqp_lab.engine.snapshot import ClientStats
from amqp_lab.ui.colors import BAD, GOOD, WARN
from amqp_lab.ui.text import rate
from amqp_lab.ui.widgets.keyed_table import KeyedTable

COLUMNS = ("client", "role", "state", "sent", "received", "rate/s", "unacked", "detail")
STATE_STYLES = {
    "running": GOOD,
    "paused": WARN,
    "done sending": "dim",
    "reconnecting": WARN,
    "waiting to join": "dim",
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

    def number(n: int) -> Text:
        return Text(f"{n:,}", justify="right")

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


class ClientsTable(KeyedTable):
    """Rows keyed by client name; the cursor row is the client the fault keys act on."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(COLUMNS, giving=("detail", "client"), **kwargs)
        self.tooltip = (
            "rate/s: what the client did in the last second, messages sent (producers, requesters) or received "
            "(consumers). A producer held up sends up to a second's worth at once: for a second after a stall it "
            "can show up to twice its rate. stalled: unacked held, nothing new taken for 3 s."
        )

    def show_clients(self, clients: Iterable[ClientStats], stalled: set[str]) -> None:
        self.show({c.name: cells(c, c.name in stalled) for c in clients})

    def state_of(self, name: str) -> str | None:
        """The state as the table shows it (stalled included), or None for a client it does not list."""
        row = self.row_shown(name)
        return row[2].plain if row else None
