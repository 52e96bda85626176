"""What the JSON report says about the scenario it ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from amqp_lab.engine.ledger import LedgerCounts
from amqp_lab.engine.report import resolved
from amqp_lab.scenario.files import load
from amqp_lab.scenario.model import EXPECTABLE


@pytest.mark.parametrize(
    ("overrides", "persistent", "publish_mode"),
    [
        ([], False, "none"),  # the deadline policy: fast
        (["map-reduce.policy=wait-for-all"], True, "confirms"),  # reliable
        (["map-reduce.persistent=true"], True, "none"),  # what is set stays as set
    ],
)
def test_settings_left_to_follow_the_policy_are_reported_as_they_ran(
    overrides: list[str], persistent: bool, publish_mode: str
) -> None:
    """The report said null for both, although every default is meant to be resolved."""
    section = resolved(load("map-reduce", overrides))["map-reduce"]
    assert (section["persistent"], section["publish_mode"]) == (persistent, publish_mode)


def test_the_docs_explain_every_figure_and_every_expectable_counter() -> None:
    """docs/scenarios.md is where a user learns what a figure means and what `[expect]` can hold."""
    docs = (Path(__file__).parents[2] / "docs" / "scenarios.md").read_text()
    figures = docs[docs.index("### The ledger") : docs.index("### Counters")]
    assert [name for name in LedgerCounts().as_dict() if f"| `{name}` |" not in figures] == []
    expectable = docs[docs.index("### What counts against") : docs.index("### Checked against")]
    assert [name for name in EXPECTABLE if f"`{name}`" not in expectable] == []
