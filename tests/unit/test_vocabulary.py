"""One vocabulary for what a run counts: the engine counts by its names only, and every name is counted, so an
`[expect]` key cannot name a counter nothing counts (`partial_jobs` was accepted while the engine counted
`jobs_partial`: an expectation that could never fail)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest
from amqp_lab.engine.roster import CLIENT_ACTIONS
from amqp_lab.scenario.figures import COUNTS, EXPECTABLE, Count, pattern_counts
from amqp_lab.scenario.model import Action, Scenario

ENGINE = Path(__file__).parents[2] / "tui" / "amqp_lab" / "engine"


def engine_trees() -> list[tuple[str, ast.AST]]:
    return [(str(path.relative_to(ENGINE)), ast.parse(path.read_text())) for path in sorted(ENGINE.rglob("*.py"))]


def test_the_engine_counts_by_the_shared_names_only() -> None:
    spelled = []
    for module, tree in engine_trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Subscript) or not isinstance(node.slice, ast.Constant):
                continue
            target = node.value
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name == "counters":
                spelled.append(f"{module}:{node.lineno} counters[{node.slice.value!r}]")
    assert spelled == []


def test_every_name_is_counted_by_the_engine() -> None:
    used = {
        node.attr
        for _, tree in engine_trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Count"
    }
    assert sorted(c.name for c in Count if c.name not in used) == []


def test_expect_takes_the_shared_names_and_nothing_else() -> None:
    assert set(EXPECTABLE) >= {str(c) for c, info in COUNTS.items() if info.expectable}
    assert Scenario.model_validate({"pattern": "map-reduce", "expect": {"jobs_partial": 0}}).expect == {
        "jobs_partial": 0
    }
    with pytest.raises(ValueError, match="cannot expect partial_jobs"):
        Scenario.model_validate({"pattern": "map-reduce", "expect": {"partial_jobs": 0}})


def test_every_pattern_counts_its_returns() -> None:
    assert all(Count.RETURNS in pattern_counts(p) for p in ("rpc", "map-reduce", "workers", "pub-sub", "custom"))


def test_every_action_a_schedule_or_a_key_can_name_is_carried_out() -> None:
    assert set(get_args(Action)) == {*CLIENT_ACTIONS, "add", "remove", "rate"}
