"""Scenario files and --set overrides: presets load, bad input names the file, key or line, and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from amqp_lab.scenario.files import PRESETS, ScenarioError, from_text, load, presets, save
from amqp_lab.scenario.model import DEFAULT_SUBSCRIBERS, Scenario
from amqp_lab.scenario.patterns import build
from amqp_lab.scenario.plan import ConsumerSpec
from amqp_lab.workshop import EXPERIMENTS, Experiment, Rerun


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_builds_with_run_scoped_names(name: str) -> None:
    scenario = load(name)
    plan = build(scenario, "lab.abc123.")
    names = [e.name for e in plan.topology.exchanges] + [q.name for q in plan.topology.queues]
    assert names and all(n.startswith("lab.abc123.") for n in names)
    assert all(q.durable or q.exclusive for q in plan.topology.queues)
    assert all(q.arguments.get("x-expires") for q in plan.topology.queues if q.durable)  # the safety net


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "docs" / "examples").glob("*.toml")))
def test_documented_examples_load(path: Path) -> None:
    assert load(str(path)).title


def test_presets_describe_themselves() -> None:
    assert [p.name for p in presets()] == list(PRESETS)
    assert all(p.description for p in presets())


def test_overrides_take_toml_values() -> None:
    scenario = load("pub-sub", ["pub-sub.subscribers={ eu = ['eu.#'] }", "duration=2m", "pub-sub.rate=max"])
    assert scenario.pub_sub.subscribers == {"eu": ["eu.#"]}
    assert scenario.duration == 120
    assert scenario.pub_sub.rate is None


def test_a_file_can_start_from_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('preset = "rpc"\nname = "slow handlers"\n[rpc]\nprocessing = "exponential:200ms"\n')
    scenario = load(str(path))
    assert scenario.pattern == "rpc" and scenario.title == "slow handlers"
    assert scenario.rpc.unroutable == 0.05  # from the preset
    assert scenario.rpc.processing.kind == "exponential" and scenario.rpc.processing.mean == 0.2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'pattern = "rpc"\n[rpc]\nhandlers = "many"\n',
            "mine.toml: rpc.handlers (line 3): Input should be a valid integer",
        ),
        (
            'pattern = "rpc"\n[rpc]\nhandler = 2\n',
            "rpc.handler (line 3): unknown key; allowed here: requesters, handlers",
        ),
        ('pattern = "rpc"\n[rpc]\nreply_queue = "mine"\n', "'server-named', 'direct-reply-to' or 'named'"),
        ('pattern = "broadcast"\n', "pattern (line 1): Input should be 'rpc', 'map-reduce', 'workers', 'pub-sub'"),
        ('pattern = "rpc"\nduration = "soon"\n', "'soon' is not a duration: write it as 500ms, 30s, 2m or 1h"),
        ('pattern = "rpc"\n[[schedule]]\nat = "1s"\naction = "explode"\nclient = "handler-1"\n', "schedule[1].action"),
        ('pattern = "rpc"\n[[schedule]]\nat = "1s"\naction = "hang"\nclient = "nobody"\n', "no such client"),
        ('pattern = "rpc"\n[expect]\nhappiness = 1\n', "cannot expect happiness"),
        ('pattern = "rpc"\n[rpc\n', "mine.toml: not valid TOML"),
        ('pattern = "custom"\n[[custom.consumers]]\nname = "c"\nqueue = "nowhere"\n', "consumes queue 'nowhere'"),
        ('pattern = "rpc"\nrpc = 3\n', "rpc"),
        (
            'pattern = "workers"\n[workers]\nqueue_type = "quorum"\nmax_length = 5\noverflow = "reject-publish-dlx"\n',
            "quorum queues have no reject-publish-dlx overflow",
        ),
        ('pattern = "workers"\n[workers]\nqueue_type = "stream"\n', "'auto', 'classic' or 'quorum'"),
        ('pattern = "pub-sub"\n[pub-sub]\nreliable = false\nqueue_type = "quorum"\n', "need reliable = true"),
        ('pattern = "pub-sub"\n[pub-sub]\nlate_subscriber = "orders"\n', "set queue_type = 'stream'"),
        ('pattern = "pub-sub"\n[pub-sub]\nlate_subscriber = "nobody"\n', "'nobody' is not one of the subscribers"),
        ('pattern = "pub-sub"\n[pub-sub]\nqueue_type = "stream"\noffset = "yesterday"\n', "a time ago such as 10s"),
    ],
)
def test_bad_files_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=None) as caught:
        load(str(path))
    assert message in str(caught.value)


def test_bad_overrides_say_so() -> None:
    with pytest.raises(ScenarioError, match=r"rpc.handlers \(from the command line\)"):
        load("rpc", ["rpc.handlers=-1"])
    with pytest.raises(ScenarioError, match="write it as key=value"):
        load("rpc", ["rpc.handlers"])
    with pytest.raises(ScenarioError, match="not a preset"):
        load("nonsense")


@pytest.mark.parametrize("name", PRESETS)
def test_a_saved_scenario_loads_back_the_same(tmp_path: Path, name: str) -> None:
    scenario = load(name, ["duration=3s", "seed=7"])
    path = tmp_path / "saved.toml"
    save(scenario, path)
    assert load(str(path)) == scenario


def queue_types(scenario: Scenario) -> dict[str, str]:
    plan = build(scenario, "lab.t.")
    queues = [*plan.topology.queues, *(c.own_queue for c in plan.clients if getattr(c, "own_queue", None))]
    return {q.name.removeprefix("lab.t."): q.type for q in queues}


def test_reliable_modes_default_to_quorum_queues_and_fast_ones_to_classic() -> None:
    assert queue_types(load("workers")) == {"tasks": "quorum"}
    assert queue_types(load("workers", ["workers.publish_mode='none'"])) == {"tasks": "classic"}
    assert set(queue_types(load("pub-sub")).values()) == {"quorum"}
    assert queue_types(load("pub-sub", ["pub-sub.reliable=false"])) == dict.fromkeys(
        [f"subscriber.{name}" for name in DEFAULT_SUBSCRIBERS], "classic"
    )
    assert set(queue_types(load("map-reduce", ["map-reduce.policy='wait-for-all'"])).values()) == {"quorum"}
    assert set(queue_types(load("map-reduce", ["map-reduce.policy='deadline'"])).values()) == {"classic"}
    assert queue_types(load("rpc", ["rpc.persistent=false"]))["rpc.requests"] == "classic"
    # the one overflow quorum queues lack keeps auto on classic
    overflow = ["workers.max_length=5", "workers.overflow='reject-publish-dlx'"]
    assert queue_types(load("workers", overflow)) == {"tasks": "classic"}


def test_a_late_subscriber_reads_a_stream_the_run_declared_from_the_start() -> None:
    scenario = load(
        "pub-sub",
        ["pub-sub.queue_type='stream'", "pub-sub.late_subscriber='orders'", "pub-sub.joins_after='4s'",
         "pub-sub.offset='30s'"],
    )  # fmt: skip
    plan = build(scenario, "lab.t.")
    assert {q.name for q in plan.topology.queues} == {f"lab.t.subscriber.{name}" for name in DEFAULT_SUBSCRIBERS}
    assert all(q.type == "stream" and "x-expires" not in q.arguments for q in plan.topology.queues)
    readers = {c.name: c for c in plan.clients if isinstance(c, ConsumerSpec)}
    assert (readers["orders"].joins_after, readers["orders"].offset) == (4.0, 30.0)
    assert (readers["payments"].joins_after, readers["payments"].offset) == (0.0, "next")
    assert any("orders joins after 4 s and reads its stream from 30s back" in note for note in plan.notes)


@pytest.mark.parametrize("found", EXPERIMENTS, ids=lambda e: e.key)
def test_every_experiment_and_each_of_its_reruns_builds(found: Experiment) -> None:
    build(found.scenario(), "lab.t.")
    for step in found.steps:
        for action in step.actions:
            if isinstance(action, Rerun):
                build(found.scenario(*action.overrides), "lab.t.")


def test_a_file_table_replaces_the_presets_as_set_does(tmp_path: Path) -> None:
    """[pub-sub.subscribers] in a file over the preset is the file's subscribers, not the preset's and the file's."""
    path = tmp_path / "mine.toml"
    path.write_text('preset = "pub-sub"\n[pub-sub.subscribers]\naudit = ["#"]\n')
    from_file = load(str(path))
    from_set = load("pub-sub", ['pub-sub.subscribers={audit = ["#"]}'])
    assert dict(from_file.pub_sub.subscribers) == dict(from_set.pub_sub.subscribers) == {"audit": ["#"]}
    assert from_file.pub_sub.rate == load("pub-sub").pub_sub.rate  # the section's other keys stay the preset's


def test_another_patterns_key_is_refused_not_ignored() -> None:
    with pytest.raises(ScenarioError, match=r"workers\.\* sets up workers runs.*pattern is rpc"):
        load("rpc", ["workers.workers=5"])


def test_a_run_of_no_duration_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"duration.*greater than 0"):
        load("workers", ["duration=0"])


def test_headers_publishers_need_no_routing_keys() -> None:
    text = """
pattern = "custom"
[[custom.exchanges]]
name = "by-region"
type = "headers"
[[custom.publishers]]
name = "p"
exchange = "by-region"
headers = {region = "eu"}
[[custom.publishers]]
name = "q"
exchange = "amq.headers"
"""
    scenario = from_text(text, "mine.toml")
    assert [p.routing_keys for p in scenario.custom.publishers] == [[""], [""]]
    with pytest.raises(ScenarioError, match="routing_keys"):  # a direct exchange still needs them
        from_text('pattern = "custom"\n[[custom.publishers]]\nname = "p"\nexchange = "amq.direct"\n', "mine.toml")
