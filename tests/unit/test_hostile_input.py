"""Hostile and malformed input, generated: the scenario parser answers any text, bytes, document or --set with
a scenario or a clear ScenarioError, never another exception; the topic rules agree with a plain reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w
from amqp_lab.amqp.routing import headers_match, topic_matches
from amqp_lab.scenario.files import MAX_FILE_BYTES, ScenarioError, from_text, load
from amqp_lab.scenario.model import Scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SECTIONS = {
    name: list(f.annotation.model_fields)
    for name, f in Scenario.model_fields.items()
    if hasattr(f.annotation, "model_fields")
}
TOP_KEYS = [name for name in Scenario.model_fields if name not in SECTIONS] + ["preset"]
PATTERNS = ["rpc", "map-reduce", "workers", "pub-sub", "custom"]

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
    | st.sampled_from([*PATTERNS, "1s", "-1s", "10h", "0ms", "1e9s", "reject-publish", "drop-head", "confirm"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Scenario-shaped TOML documents: real keys and sections with wrong, huge or odd values, and stray keys."""
    document: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(TOP_KEYS) | st.text(min_size=1, max_size=6), max_size=4)):
        document[key] = draw(values)
    if draw(st.booleans()):
        document["pattern"] = draw(st.sampled_from(PATTERNS))
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=2)):
        keys = st.sampled_from(SECTIONS[section]) | st.text(min_size=1, max_size=6)
        document[section] = draw(st.dictionaries(keys, values, max_size=4))
    return document


def answered(call: Any) -> None:
    """The call gives a scenario or a ScenarioError that says something; nothing else escapes."""
    try:
        scenario = call()
    except ScenarioError as exc:
        refusal = str(exc)
    else:
        assert isinstance(scenario, Scenario)
        return
    assert refusal.strip()


FUZZ = settings(max_examples=150)  # no deadline, no slowness check: the lab's profile (tests/conftest.py)


@FUZZ
@given(documents())
def test_any_scenario_document_is_a_scenario_or_a_clear_error(document: dict[str, Any]) -> None:
    answered(lambda: from_text(tomli_w.dumps(document), "fuzz.toml"))


@FUZZ
@given(st.text(max_size=2000))
def test_any_text_is_a_scenario_or_a_clear_error(text: str) -> None:
    answered(lambda: from_text(text, "fuzz.toml"))


@FUZZ
@given(st.text(max_size=200))
def test_any_set_override_is_applied_or_refused_clearly(override: str) -> None:
    answered(lambda: load("rpc", [override]))


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=500))
def test_any_bytes_in_a_file_are_a_scenario_or_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_bytes(content)
    answered(lambda: load(str(path)))


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with path.open("wb") as f:
        f.truncate(100 * 1024 * 1024)  # 100 MB, sparse: costs no disk
    with pytest.raises(ScenarioError, match=rf"100 MB.*at most {MAX_FILE_BYTES >> 20} MB"):
        load(str(path))


def reference_topic(pattern: list[str], words: list[str]) -> bool:
    """RabbitMQ's topic rule, written the plain recursive way: `*` one word, `#` zero or more."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(reference_topic(rest, words[skip:]) for skip in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and reference_topic(rest, words[1:])


words = st.lists(st.sampled_from(["a", "b", ""]), max_size=6)
pattern_words = st.lists(st.sampled_from(["a", "b", "", "*", "#"]), max_size=6)


@settings(max_examples=500)
@given(pattern_words, words)
def test_topic_matching_agrees_with_the_reference(pattern: list[str], key: list[str]) -> None:
    pattern_text, key_text = ".".join(pattern), ".".join(key)
    # RabbitMQ splits "" into no words at all, so the reference gets the words as the broker sees them.
    split = lambda text: text.split(".") if text else []  # noqa: E731
    assert topic_matches(pattern_text, key_text) == reference_topic(split(pattern_text), split(key_text))


@given(st.dictionaries(st.sampled_from(["k", "x-k", "n"]), st.integers(0, 2) | st.text(max_size=2), max_size=3))
def test_headers_any_is_the_union_of_single_header_bindings(headers: dict[str, Any]) -> None:
    binding = {"k": 1, "n": "a", "x-k": 2}
    for mode, with_x in (("any", False), ("any-with-x", True)):
        single = [
            headers_match({"x-match": "all-with-x" if with_x else "all", key: value}, headers)
            for key, value in binding.items()
            if with_x or not key.startswith("x-")
        ]
        assert headers_match({"x-match": mode, **binding}, headers) == any(single)
