"""The help screen on `?`: what the lab shows and which key does what."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# amqp-lab

A live view of a RabbitMQ broker: totals, message rates and every queue's
depth, asked of the management API every `--refresh` seconds (5 by default,
RabbitMQ's own statistics interval). From there, build and run scenarios of
the routing patterns, or follow a guided workshop experiment.

## Overview keys

| key | what it does |
|---|---|
| `/` | filter queues by name (Enter keeps the filter, Esc clears it) |
| `s` | sort by the next column (or click a column header) |
| `o` | flip the sort order |
| `b` | build and run a scenario |
| `w` | workshop: guided experiments |
| `r` | reconnect now and refresh the statistics |
| `c` | edit or switch the connection |
| `t` | switch between the dark and the light theme |
| `ctrl+p` | command palette: every action by name |
| `?` | this help |
| `q` | quit (a running scenario is stopped and cleaned up first) |

## The builder

Pick a pattern (`ctrl+←` `ctrl+→`, or click a tab) or open a file (`ctrl+o`).
Each option shows why you would switch it; a wrong value is said under it as
you type, and the topology preview follows. `ctrl+s` saves TOML, `ctrl+r` runs.

## A live run

| key | what it does |
|---|---|
| `space` | pause / resume the producers |
| `+` `-` | double / halve the producers' rate |
| `a` `d` | add / remove a consumer (the selected client's role, else the pattern's) |
| `↑` `↓` | select a client; then `x` crash, `h` hang, `r` restart it |
| `/` | filter the event log; Esc clears |
| `e` | export the JSON report and an SVG screenshot (the notification says where) |
| `s` | stop the run: drain, then delete everything it declared |
| `n` | workshop: the next step |
| `Esc` | back, once the run has stopped |

In the flow diagram, orange is *ready* (waiting in the queue) and blue is
*unacked* (delivered, not yet acknowledged); an edge's number is messages per
second, dim when idle. *Stalled* in the clients table means a consumer holds
unacked messages and has taken nothing new for 3 s: what a hang looks like
from outside.

## The top bar

The broker's URL (password masked), its version, and two badges:
**AMQP** (connecting, connected, reconnecting with the time elapsed, failed
with the reason) and **management** (the HTTP API that supplies the queue list,
totals and rates). Without the management API the lab still works over AMQP
and says what is missing. **READ-ONLY** means the lab changes nothing on the
broker.

## The numbers

*Ready* messages wait for a consumer; *unacked* ones were delivered and not yet
acknowledged. Rates are messages per second as the broker last measured them:
RabbitMQ refreshes its statistics every 5 s unless `collect_statistics_interval`
says otherwise, so asking more often shows the same numbers.

Press Esc or `?` to close.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
