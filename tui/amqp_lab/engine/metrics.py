"""Latency percentiles from HDR histograms, and rates over the last second from counters."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000  # one hour
_DIGITS = 3


@dataclass(frozen=True)
class Percentiles:
    """Milliseconds."""

    count: int = 0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "p50_ms": self.p50, "p95_ms": self.p95, "p99_ms": self.p99, "max_ms": self.max}


class Latency:
    """Every sample since the start, and the last second's, for live percentiles.

    Samples go into the window only; `roll()` (once a second) folds the window
    into the total and recomputes the percentiles, which cost milliseconds and
    so are never computed per snapshot.
    """

    def __init__(self) -> None:
        self._all = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
        self._window = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
        self.total = Percentiles()
        self.recent = Percentiles()

    def record(self, seconds: float) -> None:
        self._window.record_value(min(max(int(seconds * 1_000_000), _LOWEST_US), _HIGHEST_US))

    @staticmethod
    def _percentiles(histogram: HdrHistogram) -> Percentiles:
        count = histogram.get_total_count()
        if not count:
            return Percentiles()
        p50, p95, p99 = (v / 1000 for v in histogram.get_percentile_to_value_dict([50, 95, 99]).values())
        return Percentiles(count, p50, p95, p99, histogram.get_max_value() / 1000)

    def roll(self) -> None:
        self.recent = self._percentiles(self._window)
        if self._window.get_total_count():
            self._all.add(self._window)
            self.total = self._percentiles(self._all)
        self._window.reset()


class RateMeter:
    """Per-second rate of a growing counter, over the last few seconds of samples."""

    def __init__(self, span: float = 1.0) -> None:
        self.span = span
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)

    def sample(self, value: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._samples.append((now, value))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.span:
            self._samples.popleft()
        first_time, first_value = self._samples[0]
        elapsed = now - first_time
        return (value - first_value) / elapsed if elapsed > 0 else 0.0
