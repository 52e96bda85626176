"""The bad-input matrix: each mistake a careless user makes gets one clear message and exit 2, never a traceback,
and every count and size has an upper bound that says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from amqp_lab.cli import main
from amqp_lab.scenario.files import MAX_DEPTH, ScenarioError, check_buildable, load

DEEP = "[" * 5000 + "]" * 5000
DEEPISH = "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2)


def files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "deep-config": ("config.toml", f"amqp_url = {DEEP}\n"),
        "deep-scenario": ("deep.toml", f'pattern = "workers"\n[workers]\npayload = {DEEP}\n'),
        "deepish-scenario": ("deepish.toml", f'pattern = "workers"\n[workers]\npayload = {DEEPISH}\n'),
    }
    for name, text in made.values():
        (tmp_path / name).write_text(text)
    return {key: tmp_path / name for key, (name, _text) in made.items()}


CASES = {
    "log file in a missing folder": (["--log-file", "{tmp}/missing/lab.log", "scenarios"], "its folder does not exist"),
    "log file that is a folder": (["--log-file", "{tmp}", "scenarios"], "it is a folder"),
    "config nested too deep": (["--config", "{deep-config}", "check"], "nests tables or lists far too deep"),
    "scenario nested too deep": (["run", "{deep-scenario}"], "nested more than 10 deep"),
    "scenario nested past the limit": (["run", "{deepish-scenario}"], "nested more than 10 deep"),
    "--set value nested too deep": (["run", "workers", "--set", f"workers.payload={DEEP}"], "nested more than"),
    "--set key nested too deep": (["run", "workers", "--set", "a." * 2000 + "b=1"], "nested more than"),
    "payload of a petabyte": (
        ["run", "workers", "--set", "workers.payload=1000000000000000"],
        "RabbitMQ 4 refuses messages over 16 MiB",
    ),
    "100,000 workers": (["run", "workers", "--set", "workers.workers=100000"], "more than the 500 allowed"),
    "prefetch past 16 bits": (["run", "workers", "--set", "workers.prefetch=65536"], "16 bits"),
    "a billion messages a second": (["run", "workers", "--set", "workers.rate=1e9"], 'write "max"'),
    "1,000 x 1,000 x 1,000 routing keys": (
        [
            "run",
            "pub-sub",
            "--set",
            "pub-sub.regions=[" + ",".join(f'"r{n}"' for n in range(100)) + "]",
            "--set",
            "pub-sub.services=[" + ",".join(f'"s{n}"' for n in range(101)) + "]",
        ],
        "more than the 100 allowed",
    ),
    "a duration of years": (["run", "workers", "--duration", "87600h"], "a week is longer than any lab run"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_bad_input_gets_one_clear_message_and_exit_2(case: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    made = {"tmp": str(tmp_path), **{k: str(v) for k, v in files(tmp_path).items()}}
    args, message = CASES[case]
    assert main([arg.format(**made) if "{" in arg and "=" not in arg else arg for arg in args]) == 2
    error = capsys.readouterr().err
    assert message in " ".join(error.split()), error
    assert "Traceback" not in error


def test_a_routing_key_space_past_its_bound_is_refused_with_its_size() -> None:
    words = "[" + ",".join(f'"w{n}"' for n in range(30)) + "]"
    overrides = [f"pub-sub.{part}={words}" for part in ("regions", "services", "events")]
    with pytest.raises(ScenarioError, match=r"make 27,000 routing keys, more than the 10,000"):
        load("pub-sub", overrides)


def test_the_largest_scenario_allowed_still_checks() -> None:
    """At every bound at once the checks stay linear: 500 workers with duplicate-name checks and all."""
    scenario = load("workers", ["workers.workers=500", "workers.producers=500"])
    check_buildable(scenario, "preset workers")
