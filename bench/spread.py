"""A benchmark's rounds as it prints them: min / median / max, or "no sample" when there were none."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def spread(values: Sequence[float], digits: int = 0, scale: float = 1.0) -> str:
    if not values:
        return "no sample"
    return " / ".join(f"{v * scale:,.{digits}f}" for v in (min(values), statistics.median(values), max(values)))
