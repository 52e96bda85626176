"""Scenario files: TOML, built-in presets, `--set key=value` overrides, and errors that say what to fix."""

from __future__ import annotations

import re
import tomllib
import typing
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from amqp_lab.scenario.model import Scenario
from amqp_lab.scenario.patterns import build

PRESETS = ("rpc", "map-reduce", "workers", "pub-sub", "custom")
CHECK_PREFIX = "lab.check."  # names are built with it, and taken off again in messages


MAX_FILE_BYTES = 1 << 20  # a scenario is a few hundred bytes; anything this big is a mistake


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file, the key or line, and what is allowed."""

    def __init__(self, message: str, keys: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.keys = dict(keys or {})  # dotted key -> what is wrong with it, for a form to show by its field


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    text: str


def preset(name: str) -> Preset:
    text = resources.files("amqp_lab.scenario").joinpath("presets", f"{name}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return Preset(name, data.get("description", ""), text)


def presets() -> list[Preset]:
    return [preset(name) for name in PRESETS]


def load(source: str, overrides: Iterable[str] = ()) -> Scenario:
    """A preset name or a TOML file, then each `key=value` override; validated, and checked to build."""
    where, text = read_source(source)
    return from_text(text, where, overrides)


def read_source(source: str) -> tuple[str, str]:
    """(where, text) of a preset name or a scenario file."""
    if source in PRESETS:
        return f"preset {source}", preset(source).text
    path = Path(source).expanduser()
    if not path.is_file():
        raise ScenarioError(f"{source}: no such scenario file, and not a preset (presets: {', '.join(PRESETS)})")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(
                f"{path}: {size / 2**20:.0f} MB is not a scenario; scenario files are at most {MAX_FILE_BYTES >> 20} MB"
            )
        return str(path), path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start}): save the scenario as UTF-8") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def from_text(text: str, where: str, overrides: Iterable[str] = ()) -> Scenario:
    """A scenario's TOML text (`where` names it in errors), then each `key=value` override."""
    overrides = list(overrides)
    data = _parse(text, where)
    base = data.pop("preset", None)
    if base is not None:
        if base not in PRESETS:
            raise ScenarioError(f"{where}: preset = {base!r} is not a preset; presets: {', '.join(PRESETS)}")
        data = _merge(_parse(preset(base).text, f"preset {base}"), data)
    for override in overrides:
        _apply(data, override)
    _check_sections(data, overrides, where)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, where, text, overrides) from None
    check_buildable(scenario, where)
    return scenario


def to_toml(scenario: Scenario) -> str:
    """The scenario as a file: what differs from the defaults, so it reads like one written by hand."""
    data = scenario.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    data = {"pattern": scenario.pattern, **data}
    return tomli_w.dumps(data)


def save(scenario: Scenario, path: Path) -> None:
    path.write_text(to_toml(scenario), encoding="utf-8")


def check_buildable(scenario: Scenario, where: str) -> None:
    """References between objects: what the broker would refuse or what would point nowhere."""
    plan = build(scenario, CHECK_PREFIX)
    problems = plan.topology.problems()
    names = [c.name for c in plan.clients]
    problems += [f"two clients are named {n!r}" for n, count in sorted(Counter(names).items()) if count > 1]
    exchanges = {e.name for e in plan.topology.exchanges} | {""}
    queues = {q.name for q in plan.topology.queues}
    for client in plan.clients:
        exchange = getattr(client, "exchange", None)
        if exchange is not None and exchange not in exchanges and not exchange.startswith("amq."):
            problems.append(f"client {client.name!r} publishes to exchange {exchange!r}, which is not declared")
        queue = getattr(client, "queue", None)
        if queue is not None and queue not in queues and getattr(client, "own_queue", None) is None:
            problems.append(f"client {client.name!r} consumes queue {queue!r}, which is not declared")
    for action in scenario.schedule:
        if action.action in ("add", "remove", "rate"):
            if action.client not in plan.roles and action.client not in names:
                problems.append(
                    f"schedule: {action.action} {action.client!r}: no such role or client "
                    f"(roles: {', '.join(plan.roles)})"
                )
        elif action.client not in names:
            problems.append(
                f"schedule: {action.action} {action.client!r}: no such client (clients: {', '.join(names)})"
            )
    if problems:
        raise ScenarioError(f"{where}: " + "; ".join(p.replace(CHECK_PREFIX, "") for p in problems))


MAX_DEPTH = 10  # tables and lists inside each other: a scenario needs five at most (custom.queues[1].arguments)


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:  # the TOML parser recurses once per level
        raise ScenarioError(_too_deep(where)) from None
    _check_depth(data, where)
    return data


def _too_deep(where: str) -> str:
    return f"{where}: tables and lists nested more than {MAX_DEPTH} deep; a scenario needs five levels at most"


def _check_depth(data: Any, where: str) -> None:
    """Without recursion, so that any depth is refused with a message rather than a RecursionError later."""
    level: list[Any] = [data]
    for _depth in range(MAX_DEPTH + 1):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return
    raise ScenarioError(_too_deep(where))


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """A file over its preset: a section's keys replace the preset's one by one, and a key's value replaces the
    preset's whole, tables too ([pub-sub.subscribers] is the file's subscribers, as --set makes it)."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _check_sections(data: Mapping[str, Any], overrides: list[str], where: str) -> None:
    """--set of another pattern's section would be ignored by this run without a word: refused instead."""
    pattern = data.get("pattern")
    for override in overrides:
        section = override.partition("=")[0].strip().partition(".")[0]
        if section in PRESETS and section != pattern and pattern in PRESETS:
            raise ScenarioError(
                f"{where}: --set {override[:60]!r}: {section}.* sets up {section} runs, and this scenario's pattern "
                f"is {pattern}: use {pattern}.* keys, or run the {section} preset"
            )


def _apply(data: dict[str, Any], override: str) -> None:
    """`rpc.handlers=3`, `pub-sub.subscribers.eu=["eu.#"]`: the value in TOML syntax, else taken as text.

    `rpc.limit=` with nothing after the sign unsets the key: its default applies.
    """
    key, sep, raw = override.partition("=")
    parts = [part.strip() for part in key.split(".")]
    if not sep or not all(parts):
        raise ScenarioError(f"--set {override!r}: write it as key=value, e.g. --set rpc.handlers=3")
    unset = not raw.strip()
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    except RecursionError:
        value = None
    place = f"--set {override[:40]!r}"
    if value is None or len(parts) > MAX_DEPTH:
        raise ScenarioError(_too_deep(place))
    _check_depth(value, place)
    target = data
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ScenarioError(f"--set {override!r}: {part} is a value, not a section")
    if unset:
        target.pop(parts[-1], None)
    else:
        target[parts[-1]] = value


def _explain(exc: ValidationError, where: str, text: str, overrides: list[str]) -> ScenarioError:
    lines = []
    keys: dict[str, str] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = _dotted(loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            allowed = _keys_at(loc[:-1])
            message = "unknown key" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
        elif error["type"] == "missing":
            message = "missing, and it has no default"
        else:
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] not in ("value_error", "literal_error") and "input" in error:
                message += f" (got {error['input']!r})"
        origin = _origin(loc, text, overrides)
        lines.append(f"{key}{origin}: {message}")
        keys.setdefault(key, message)
    summary = "\n  ".join(["invalid scenario", *lines]) if len(lines) > 1 else lines[0]
    return ScenarioError(f"{where}: {summary}", keys)


def _dotted(loc: tuple[Any, ...]) -> str:
    """rpc.handlers, schedule[2].action (entries counted from 1, as a reader counts them)."""
    text = ""
    for part in loc:
        text += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _origin(loc: tuple[Any, ...], text: str, overrides: list[str]) -> str:
    dotted = ".".join(str(p) for p in loc if not isinstance(p, int))
    if any(o.partition("=")[0].strip() == dotted for o in overrides):
        return " (from the command line)"  # --set, or --duration
    line = _line_of(loc, text)
    return f" (line {line})" if line else ""


def _line_of(loc: tuple[Any, ...], text: str) -> int | None:
    """The line that sets the key: after its section's header when it has one."""
    keys = [str(p) for p in loc if not isinstance(p, int)]
    if not keys:
        return None
    lines = text.splitlines()
    start = 0
    if len(keys) > 1:
        header = re.compile(rf"^\s*\[+\s*{re.escape('.'.join(keys[:-1]))}\s*\]+")
        start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
    assignment = re.compile(rf'^\s*"?{re.escape(keys[-1])}"?\s*=')
    return next((i + 1 for i in range(start, len(lines)) if assignment.match(lines[i])), None)


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return []
        model = _inner_model(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _inner_model(annotation: Any) -> Any:
    """The model inside list[X], X | None and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
