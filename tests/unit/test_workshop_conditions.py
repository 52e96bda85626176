"""When a workshop step goes on by itself: its condition read off run snapshots, and the state a fresh run is
brought to for a step reached backwards."""

from __future__ import annotations

from dataclasses import replace

import pytest
from amqp_lab.engine.ledger import LedgerCounts
from amqp_lab.engine.placement import NodeState
from amqp_lab.scenario.controls import Inject
from amqp_lab.scenario.figures import Count, pattern_counts
from amqp_lab.workshop import (
    EXPERIMENTS,
    LEDGER_FIGURES,
    After,
    Grown,
    NodesDown,
    experiment,
    single_node,
)

from tests.ui.test_snapshots import FROZEN

AT_2 = replace(FROZEN, elapsed=2.0, counters={"timeouts": 3}, ledger=LedgerCounts(redelivered=1))
AT_9 = replace(FROZEN, elapsed=9.0, counters={"timeouts": 12}, ledger=LedgerCounts(redelivered=4))


def nodes(*states: str) -> tuple[NodeState, ...]:
    return tuple(NodeState(f"lab-{n}", state) for n, state in enumerate(states, start=1))


def test_after_counts_run_time_from_the_step_or_from_the_run_start() -> None:
    assert After(10).waiting(None, AT_2) == "next step in 8 s"
    assert After(10).waiting(None, AT_9) == "next step in 1 s"
    assert After(7).waiting(AT_2, AT_9) is None
    assert After(7.5).waiting(AT_2, AT_9) == "next step in 1 s"  # half a second left: rounded up, never "0 s"


def test_grown_counts_from_the_step_not_from_the_run_start() -> None:
    assert Grown(Count.TIMEOUTS, 10).waiting(None, AT_2) == "next step after 10 RPC timeouts: 3 so far"
    assert Grown(Count.TIMEOUTS, 10).waiting(None, AT_9) is None
    assert Grown(Count.TIMEOUTS, 10).waiting(AT_2, AT_9) == "next step after 10 RPC timeouts: 9 so far"
    assert Grown("redelivered", 3).waiting(AT_2, AT_9) is None  # a ledger figure
    assert Grown("redelivered", 4).waiting(AT_2, AT_9) == "next step after 4 redelivered: 3 so far"


def test_nodes_down_waits_for_a_node_to_stop_then_for_every_node_to_run() -> None:
    three = replace(FROZEN, nodes=nodes("running", "running", "running"))
    one_down = replace(FROZEN, nodes=nodes("running", "down", "running"))
    assert NodesDown(1).waiting(None, three) == "next step once a node is down: 3 running"
    assert NodesDown(1).waiting(None, one_down) is None
    assert NodesDown(0).waiting(None, one_down) == "next step once every node runs: 1 down"
    assert NodesDown(0).waiting(None, three) is None
    assert NodesDown(0).waiting(None, FROZEN) == "next step once every node runs: 0 down"  # no nodes known yet


def test_a_single_node_says_there_is_nothing_to_fail_over_to() -> None:
    single = replace(FROZEN, nodes=nodes("running"))
    said = NodesDown(1).waiting(None, single)
    assert said == single_node()
    assert said is not None and "single node" in said and "needs a cluster" in said


@pytest.mark.parametrize("found", EXPERIMENTS, ids=lambda e: e.key)
def test_every_step_but_the_last_goes_on_by_a_figure_its_pattern_counts(found) -> None:  # type: ignore[no-untyped-def]
    *before, last = found.steps
    assert last.advance is None  # the presenter stops the run
    assert all(step.advance is not None for step in before)
    counted = {str(c) for c in pattern_counts(found.scenario().pattern)} | LEDGER_FIGURES
    for step in before:
        if isinstance(step.advance, Grown):
            assert step.advance.name in counted


def test_a_step_reached_backwards_is_the_last_rerun_and_the_controls_since() -> None:
    shards = experiment("shard-missing")
    assert shards.state_at(0) == ((), ())
    assert shards.state_at(2) == ((), (Inject("shard-3", "crash"), Inject("shard-3", "restart")))
    assert shards.state_at(3) == (('map-reduce.policy="wait-for-all"',), (Inject("shard-3", "crash"),))
    assert shards.state_at(4) == (
        ('map-reduce.policy="wait-for-all"',),
        (Inject("shard-3", "crash"), Inject("shard-3", "restart")),
    )
