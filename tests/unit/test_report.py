"""What the JSON report says about the scenario it ran."""

from __future__ import annotations

import pytest
from amqp_lab.engine.report import resolved
from amqp_lab.scenario.files import load


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
