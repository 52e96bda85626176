"""The help screen on `?`: what the lab shows and which key does what."""

from __future__ import annotations

from rich.markdown import Markdown
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from amqp_lab.ui.themes import StyleKeepingScreen
from amqp_lab.ui.widgets.fitting_footer import FittingFooter

HELP = """\
# amqp-lab

A live view of a RabbitMQ broker: totals, message rates, queues, exchanges
and their bindings, connections, channels and consumers, asked of the
management API every `--refresh` seconds (5 by default, RabbitMQ's own
statistics interval; longer when the API answers slowly, and the screen
says so). Explore and debug what is there, build and run scenarios of the
routing patterns, or follow a guided workshop experiment.

## The explorer (the first screen)

Five tabs, `1` to `5`: queues, exchanges, connections, channels, consumers,
of one vhost or all (`v`). Only the tab on screen is asked for; on a big
broker the queue table holds one page (500), chosen by the broker in the
order the table is sorted, so sorting by *Ready* finds the deepest queues.

| key | what it does |
|---|---|
| `/` | filter queues by name (Enter keeps the filter, Esc clears it) |
| `s` `o` | sort by the next column (or click a header); flip the order |
| `Enter` | on a queue: its detail; on an exchange: its bindings |
| `t` | tap the exchange: watch what it routes, without taking anything |
| `k` | which queues would a routing key (and headers) reach? |
| `p` | publish a test message (mandatory: says routed or returned) |
| `D` | delete the exchange, after a confirmation that names it |
| `v` | show one vhost, or all |
| `b` | build and run a scenario |
| `w` | workshop: guided experiments |
| `W` | watch a live run someone started on this broker, read-only (as `amqp-lab watch`) |
| `r` | reconnect now and refresh the statistics |
| `c` | edit or switch the connection |
| `t` | (elsewhere) switch between the dark and the light theme |
| `ctrl+p` | command palette: every action by name |
| `?` | this help |
| `q` | quit (a running scenario is stopped and cleaned up first) |

## A queue up close

Depth and rates over its last 120 looks (ten minutes at the default
`--refresh`; the line at the bottom says how long); each consumer's
prefetch against what its channel holds unacked, its ack rate, and **stuck** when unacked messages sit
while the channel acks nothing (the time shown is a lower bound of the
oldest delivery's age), with a warning once that nears the *consumer
timeout* (30 min unless the queue or a policy says otherwise), after which
RabbitMQ closes the channel. On the left: what applies to its messages
(TTL, dead-lettering, length limits and overflow, from its arguments and
its policy, merged as RabbitMQ merges them), and its bindings.

| key | what it does |
|---|---|
| `g` | peek at up to 20 messages: text, JSON or hex (`m`), properties, headers (see below) |
| `p` | publish a test message to this queue |
| `P` | purge it, after a confirmation |
| `D` | delete it, after a confirmation |
| `Esc` | back |

Peeking takes the messages and puts them straight back: they are marked
*redelivered*, and a consumer may receive them meanwhile.

`--read-only` turns off every key that changes the broker (peek, tap,
publish, purge, delete, runs): they are dimmed in the footer.

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
| `P` | projector mode: the flow and five figures large, high contrast; `P` again: every panel (`--present`) |
| `R` | record the run from now on, for `amqp-lab replay` and `amqp-lab compare`; `R` again stops |
| `s` | stop the run: drain, then delete everything it declared |
| `n` `PgDn` | workshop: the next step (a step with a condition, shown in its panel, goes on by itself) |
| `b` `PgUp` | workshop: back a step (the experiment restarts, brought to that step) |
| `B` `Home` | workshop: the experiment from its first step, on a fresh run |
| `H` | workshop: hold this step; `H` again lets it go on |
| `Esc` | back, once the run has stopped |

In the flow diagram, orange is *ready* (waiting in the queue) and blue is
*unacked* (delivered, not yet acknowledged); an edge's number is messages per
second, dim when idle. *Stalled* in the clients table means a consumer holds
unacked messages and has taken nothing new for 3 s: what a hang looks like
from outside. *rate/s* is what the client did in the last second: messages
sent by a producer, requester or submitter (with a handler's or shard's
answers), messages received by a consumer. A producer held up (a slow
confirm, a reconnect) sends up to a second's worth at once when it can, so
for a second after a stall it can show up to twice its rate (a requester set
to 20/s showed 30).

## The top bar

The broker's URL (password masked), its version, and two badges:
**AMQP** (connecting, connected, reconnecting with the time elapsed, failed
with the reason) and **management** (the HTTP API that supplies the queue list,
totals and rates). Without the management API the lab still works over AMQP
and says what is missing. **READ-ONLY** means the lab changes nothing on the
broker.

## The numbers

*Ready* messages wait for a consumer; *unacked* ones were delivered and not yet
acknowledged. Rates are messages per second over the broker's last statistics
step: RabbitMQ's counters step every 5 s unless `collect_statistics_interval`
and the management plugin's `sample_retention_policies` (samples of 5 s) say
otherwise, so asking more often shows the same numbers.

Press Esc or `?` to close.
"""


class HelpScreen(ModalScreen[None], StyleKeepingScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Markdown(HELP))
        yield FittingFooter()

    def on_screen_suspend(self) -> None:
        # Kept between opens, each opens at the top: a scroll still going on (End, PgDn) stops as help closes.
        self.query_one("#help", VerticalScroll).scroll_home(animate=False, immediate=True)
