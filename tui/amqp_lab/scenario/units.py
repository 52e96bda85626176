"""Values a scenario file writes as text: durations ("250ms", "30s", "2m"), rates ("max") and latency distributions."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

MAX_DURATION = 7 * 24 * 3600.0  # a week: longer than any lab run, and within x-expires' 32-bit milliseconds


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"


def at_most(maximum: float, why: str, shown: Callable[[float], str] = _number) -> AfterValidator:
    """An upper bound that says its reason: every count and size a user can type has one."""

    def check(value: Any) -> Any:
        if value is not None and value > maximum:
            raise ValueError(f"{shown(value)} is more than the {shown(maximum)} allowed: {why}")
        return value

    return AfterValidator(check)


def at_most_items(maximum: int, why: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if len(value) > maximum:
            raise ValueError(f"{len(value):,} entries are more than the {maximum:,} allowed: {why}")
        return value

    return AfterValidator(check)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from 250ms, 30s, 2m, 1h or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 500ms, 30s or 2m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: write it as 500ms, 30s, 2m or 1h")
        seconds = float(match.group(1)) * _SCALE[match.group(2)]
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    at_most(MAX_DURATION, "a week is longer than any lab run", lambda seconds: f"{_number(seconds)} s"),
    PlainSerializer(format_duration, return_type=str),
]


def parse_rate(value: Any) -> float | None:
    """Messages per second, or None for "max" (as fast as the broker takes them)."""
    if isinstance(value, str) and value.strip().lower() in ("max", "unlimited"):
        return None
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError('a rate is a number of messages per second, or "max"')
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{value!r} is not a rate: give messages per second, or "max"') from None
    if rate < 0 or not math.isfinite(rate):
        raise ValueError("a rate cannot be negative")
    return rate


MAX_RATE = 100_000.0

Rate = Annotated[
    float | None,
    BeforeValidator(parse_rate),
    at_most(MAX_RATE, 'one simulated client does not publish faster; write "max" for as fast as it can'),
    PlainSerializer(lambda rate: "max" if rate is None else rate),
]

DistributionKind = Literal["fixed", "uniform", "normal", "exponential"]


class Distribution(BaseModel):
    """A processing time: fixed; uniform over mean ± spread; normal (spread = deviation); exponential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DistributionKind = "fixed"
    mean: Duration = 0.0
    spread: Duration = 0.0

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """ "20ms" means fixed 20 ms; "exponential:20ms" names the kind."""
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            kind, _, mean = str(value).rpartition(":")
            return {"kind": kind or "fixed", "mean": mean}
        return value

    @property
    def takes_no_time(self) -> bool:
        """No time at all, whatever the kind: every sample is 0."""
        return self.mean == 0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed" or self.takes_no_time:
            return self.mean
        if self.kind == "uniform":
            return max(0.0, rng.uniform(self.mean - self.spread, self.mean + self.spread))
        if self.kind == "normal":
            return max(0.0, rng.gauss(self.mean, self.spread))
        return rng.expovariate(1.0 / self.mean)

    def describe(self) -> str:
        if self.kind == "fixed":
            return format_duration(self.mean)
        if self.kind == "exponential":
            return f"exponential, mean {format_duration(self.mean)}"
        return f"{self.kind}, mean {format_duration(self.mean)} ± {format_duration(self.spread)}"


# The prefetch count is 16 bits on the wire (basic.qos).
Prefetch = Annotated[int, Field(ge=1), at_most(65535, "basic.qos carries the prefetch count in 16 bits")]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
