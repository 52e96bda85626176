"""Guided experiments: a scenario, and steps that say what to look at while the lab does one thing at a time.

Pure data and no Textual: the live screen shows a step in its side panel and,
when the user advances, performs the step's action through the same controls
the keys use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from amqp_lab.engine.ledger import LedgerCounts
from amqp_lab.engine.snapshot import RunSnapshot
from amqp_lab.scenario.controls import Control, Inject
from amqp_lab.scenario.figures import COUNTS, Count
from amqp_lab.scenario.files import load
from amqp_lab.scenario.model import Scenario

UNTIL_STOPPED = 'duration="8h"'  # an experiment runs until the presenter stops it


@dataclass(frozen=True)
class Rerun:
    """End the run and start the experiment's scenario again with these overrides."""

    overrides: tuple[str, ...]


LEDGER_FIGURES = frozenset(f.name for f in fields(LedgerCounts))


def figure(snapshot: RunSnapshot, name: str) -> int:
    """A run's count or ledger figure by name."""
    if name in LEDGER_FIGURES:
        return int(getattr(snapshot.ledger, name))
    return snapshot.counters.get(name, 0)


def figure_label(name: str) -> str:
    return COUNTS[Count(name)].label if name in Count.__members__.values() else name.replace("_", " ")


@dataclass(frozen=True)
class After:
    """Move on once the step has run this long (run time)."""

    seconds: float

    def waiting(self, began: RunSnapshot | None, now: RunSnapshot) -> str | None:
        left = self.seconds - (now.elapsed - (began.elapsed if began is not None else 0.0))
        return None if left <= 0 else f"next step in {math.ceil(left)} s"


@dataclass(frozen=True)
class Grown:
    """Move on once a figure has grown by `by` since the step began."""

    name: str  # a Count or a ledger figure
    by: int

    def waiting(self, began: RunSnapshot | None, now: RunSnapshot) -> str | None:
        grown = figure(now, self.name) - (figure(began, self.name) if began is not None else 0)
        if grown >= self.by:
            return None
        return f"next step after {self.by} {figure_label(self.name)}: {max(grown, 0)} so far"


@dataclass(frozen=True)
class NodesDown:
    """Move on once this many of the cluster's nodes are not running (0: once every node runs again)."""

    count: int

    def waiting(self, began: RunSnapshot | None, now: RunSnapshot) -> str | None:
        if len(now.nodes) == 1:
            return single_node()
        down = sum(node.state != "running" for node in now.nodes)
        if self.count == 0:
            return None if now.nodes and down == 0 else f"next step once every node runs: {down} down"
        return None if down >= self.count else f"next step once a node is down: {len(now.nodes) - down} running"


Advance = After | Grown | NodesDown

CLUSTER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq_cluster.py"  # in a source checkout
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # what the script starts nodes with


def single_node() -> str:
    """What a node-failure step says on a broker of one node, and what it needs instead."""
    said = (
        "This broker is a single node: there is no other node to fail over to, so stopping it would only stop "
        "the run. This experiment needs a cluster: connect (C) with every node's URL, comma separated."
    )
    if CLUSTER_SCRIPT.is_file() and RABBITMQ_SERVER.is_file():
        said += (
            f"\nA test cluster of three nodes can run here:\n  eval $(python3 {CLUSTER_SCRIPT} start "
            "--dir /tmp/lab-cluster)\n  amqp-lab workshop node-failure"
        )
    elif CLUSTER_SCRIPT.is_file():
        said += "\nThe test cluster script needs RabbitMQ installed here (apt-get install rabbitmq-server)."
    return said


@dataclass(frozen=True)
class Step:
    text: str  # what happens, and what to look at
    actions: tuple[Control | Rerun, ...] = ()  # done in order on reaching the step
    advance: Advance | None = None  # when the step moves on by itself; None: on the presenter's n


@dataclass(frozen=True)
class Experiment:
    key: str
    title: str
    preset: str
    overrides: tuple[str, ...]
    steps: tuple[Step, ...]

    def scenario(self, *more: str) -> Scenario:
        return load(self.preset, [UNTIL_STOPPED, f'name="{self.title}"', *self.overrides, *more])

    def state_at(self, step: int) -> tuple[tuple[str, ...], tuple[Control, ...]]:
        """What brings a fresh run to `step` as if it had gone there step by step: the overrides of the last rerun
        up to it, and the controls after that rerun, in order."""
        overrides: tuple[str, ...] = ()
        controls: list[Control] = []
        for reached in self.steps[1 : step + 1]:
            for action in reached.actions:
                if isinstance(action, Rerun):
                    overrides, controls = action.overrides, []
                else:
                    controls.append(action)
        return overrides, tuple(controls)


EXPERIMENTS = (
    Experiment(
        "handler-hangs",
        "A handler hangs: watch the requester time out",
        "rpc",
        ("rpc.requesters=1", "rpc.handlers=1", "rpc.rate=10", 'rpc.timeout="1s"', "rpc.unroutable=0"),
        (
            Step(
                "The requester calls through the **rpc** exchange; **handler-1** answers through the requester's "
                "exclusive reply queue. Look at the round trip in the trends (p50, p95, p99): a few milliseconds, "
                "and no timeouts.",
                advance=After(10),
            ),
            Step(
                "The lab **hung handler-1**: it keeps the requests it prefetched, unacked, and takes no new one. "
                "Watch the queue **rpc.requests** fill (ready, orange) and the **timeouts** count climb: every request "
                "waits 1 s, then the requester gives up. The clients table says the handler is hung.",
                actions=(Inject("handler-1", "hang"),),
                advance=Grown(Count.TIMEOUTS, 10),
            ),
            Step(
                "The lab **restarted handler-1**. Its unacked requests went back to the queue (redelivered) and the "
                "backlog is answered, but too late: those replies arrive after the timeout and count as **late "
                "replies**. A timeout does not mean the work was not done: handlers should be idempotent, and a "
                "requester drops replies whose correlation id it no longer waits for.",
                actions=(Inject("handler-1", "restart"),),
            ),
        ),
    ),
    Experiment(
        "shard-missing",
        "A shard is missing: wait-for-all against deadline",
        "map-reduce",
        ("map-reduce.rate=4", 'map-reduce.deadline="1s"', 'map-reduce.policy="deadline"'),
        (
            Step(
                "Every job goes through the **jobs** fanout exchange to all three shards; the **reducer** combines "
                "their results. Policy **deadline**: after 1 s it answers with what it has. All jobs are complete.",
                advance=After(10),
            ),
            Step(
                "The lab **crashed shard-3**. Its queue keeps the jobs (durable), nobody works them. With a deadline "
                "the reducer answers anyway: **partial jobs** climb, latency stays near the deadline.",
                actions=(Inject("shard-3", "crash"),),
                advance=Grown(Count.JOBS_PARTIAL, 5),
            ),
            Step(
                "The lab **restarted shard-3**. It works off its backlog; those results come after their job's "
                "deadline: **late results**. Fast answers, incomplete ones.",
                actions=(Inject("shard-3", "restart"),),
                advance=Grown(Count.LATE_RESULTS, 3),
            ),
            Step(
                "Same run with **wait-for-all**: the reducer holds partial results unacked until all shards "
                "answered. The lab now crashes shard-3 again: jobs stay **pending**, none is partial, the "
                "results queue's unacked grows. Next, the shard comes back.",
                actions=(Rerun(('map-reduce.policy="wait-for-all"',)), Inject("shard-3", "crash")),
                advance=Grown(Count.PENDING_JOBS, 5),
            ),
            Step(
                "The lab **restarted shard-3**: the pending jobs complete, complete results only, none lost. "
                "Complete answers, late ones: pick the policy by what the caller needs.",
                actions=(Inject("shard-3", "restart"),),
            ),
        ),
    ),
    Experiment(
        "load-spike",
        "A load spike: add workers and watch the backlog drain",
        "workers",
        ("workers.workers=1", "workers.rate=40", 'workers.processing="fixed:40ms"'),
        (
            Step(
                "One producer sends 40 tasks a second; one worker needs 40 ms per task, so it manages 25. "
                "Watch the ready depth (orange) of the queue **tasks**, and its trend, climb: a backlog.",
                advance=After(15),
            ),
            Step(
                "The lab **added a worker** (the `a` key does the same). Two workers manage 50 a second: the "
                "backlog stops growing and starts to shrink. Competing consumers share one queue; each task "
                "goes to one of them.",
                actions=(Inject("worker", "add"),),
                advance=After(15),
            ),
            Step(
                "The lab **added a third worker**. The backlog drains faster; acked/s is above published/s until "
                "the queue is empty, then both meet at 40/s. Press `d` to remove one and watch it grow again.",
                actions=(Inject("worker", "add"),),
            ),
        ),
    ),
    Experiment(
        "reliable-pub-sub",
        "Reliable pub-sub: a subscriber goes away, nothing is lost",
        "pub-sub",
        ("pub-sub.rate=10", "pub-sub.reliable=true"),
        (
            Step(
                "Publishers send region.service.event keys to the **events** topic exchange; each subscriber's "
                "durable queue is bound with its own patterns. Reliable: persistent events, publisher confirms, "
                "manual acks.",
                advance=After(10),
            ),
            Step(
                "The lab **stopped payments**. Its queue is durable and stays bound: the events it selects "
                "(*.*.paid) wait there. Watch the queue **subscriber.payments** fill while the others keep flowing.",
                actions=(Inject("payments", "stop"),),
                advance=After(10),
            ),
            Step(
                "The lab **restarted payments**. It drains its queue: it gets every event it selected while it "
                "was away. The status line says lost 0 and the subscribers' missed stays 0. A non-durable "
                "subscriber (reliable = false) would have missed them.",
                actions=(Inject("payments", "restart"),),
            ),
        ),
    ),
    Experiment(
        "node-failure",
        "A node fails: quorum queues carry on, a classic queue waits",
        "workers",
        ("workers.rate=50", 'workers.processing="fixed:10ms"', 'workers.queue_type="quorum"'),
        (
            Step(
                "Needs a cluster (connect with every node's URL, comma separated; on one machine: "
                "`python3 scripts/rabbitmq_cluster.py start`). The task queue is a **quorum** queue: the flow "
                "diagram shows its leader (@node) and replicas online (3/3), the header the cluster's nodes. "
                "Now stop the leader's node: `rabbitmqctl -n NODE stop_app` (the test cluster: "
                "`python3 scripts/rabbitmq_cluster.py stop-node N --dir DIR`): the next step follows.",
                advance=NodesDown(1),
            ),
            Step(
                "Watch: the header says **2/3 up**; the clients that were on that node show **reconnecting**, then "
                "run again on another (event log: reconnected after ...); the queue elects a **new leader** (event "
                "log: leader moved; flow: 2/3). Confirms wait for the new leader, so the status line keeps "
                "**lost 0**. Start the node again (`start_app`, or `start-node N`): the next step follows.",
                advance=NodesDown(0),
            ),
            Step(
                "The node is back: **3/3** replicas, the leader stays where it moved. The lab restarted the run "
                "with a **classic** queue: it lives on one node only. Stop that node (@node in the flow diagram): "
                "the run says **RECONNECTING** and RabbitMQ's reason, *home node ... is down or inaccessible*, "
                "until the node is back. Nothing moves meanwhile: that is what replication buys.",
                actions=(Rerun(('workers.queue_type="classic"',)),),
            ),
        ),
    ),
    Experiment(
        "immediate-flag",
        "The immediate flag: what RabbitMQ 3+ does, and what to use instead",
        "rpc",
        ("rpc.requesters=1", "rpc.handlers=1", "rpc.rate=5", "rpc.unroutable=0", "rpc.immediate=true"),
        (
            Step(
                "The requester set **immediate** on its first request. RabbitMQ dropped the flag in 3.0: it closed "
                "the connection with **540 NOT_IMPLEMENTED** (see the event log). The lab reconnects and goes on "
                "without the flag; the status line counts the refusal.",
                advance=After(10),
            ),
            Step(
                "The documented replacement: a request queue with **message TTL 0** and a **dead-letter "
                "exchange**. A request no handler can take at once expires into **rpc.unhandled**. The lab "
                "restarted the run that way; everything is answered while the handler keeps up.",
                actions=(
                    Rerun(
                        (
                            "rpc.immediate=false",
                            "rpc.ttl0_dead_letter=true",
                        )
                    ),
                ),
                advance=After(10),
            ),
            Step(
                "The lab **hung handler-1**. Now nobody can take a request at once: each one is dead-lettered "
                "as it arrives (the ☠ line counts them) instead of waiting in the queue. The broker knows at once; "
                "the caller still learns only when its timeout runs out (immediate would have returned the request "
                "to it), unless something reads **rpc.unhandled**. What the hung handler held goes there too "
                "when the run stops.",
                actions=(Inject("handler-1", "hang"),),
            ),
        ),
    ),
)


def experiment(key: str) -> Experiment:
    found = next((e for e in EXPERIMENTS if e.key == key), None)
    if found is None:
        raise KeyError(f"no experiment {key!r}; experiments: {', '.join(e.key for e in EXPERIMENTS)}")
    return found
