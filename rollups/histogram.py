"""Log-bucketed latency histograms: mergeable, small, and precise enough for p50/p95/p99.

Bucket i holds durations in [BASE**i, BASE**(i+1)) milliseconds (bucket 0 also holds everything below 1 ms).
A quantile is reported as the geometric middle of its bucket, so its relative error is at most
sqrt(BASE) - 1 ≈ 2.5 %: the "histogram's stated error" the selectors' tests allow.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping

BASE = 1.05
RELATIVE_ERROR = math.sqrt(BASE) - 1
_LOG_BASE = math.log(BASE)


def bucket_of(duration_ms: float) -> int:
    if duration_ms < 1.0:
        return 0
    return int(math.log(duration_ms) / _LOG_BASE)


def bucket_value(index: int) -> float:
    """The representative duration of a bucket: the geometric middle of its bounds."""
    return BASE ** (index + 0.5)


def histogram(durations: Iterable[float]) -> dict[str, int]:
    """JSON-ready sparse histogram (string keys, as JSONField stores them)."""
    counts: dict[str, int] = {}
    for duration in durations:
        key = str(bucket_of(duration))
        counts[key] = counts.get(key, 0) + 1
    return counts


def merge(histograms: Iterable[Mapping[str, int]]) -> dict[int, int]:
    histograms = list(histograms)
    if len(histograms) == 1:  # the common case for one bucket of one environment
        return {int(key): count for key, count in histograms[0].items()}
    # Keys stay strings until the end (one int() per bucket, not per row); a plain dict loop, because
    # Counter.update on a mapping runs the same loop with more indirection (2.3x slower on 5,665 hourly rows).
    total: dict[str, int] = {}
    seen = total.get
    for hist in histograms:
        for key, count in hist.items():
            total[key] = seen(key, 0) + count
    return {int(key): count for key, count in total.items()}


class Quantiles:
    """The quantiles of one merged histogram, its buckets sorted and counted up once: a chart asks each bucket for
    three or four (p50, p95, p99 and the axis's peak), 2,880 on a 30-day page."""

    def __init__(self, merged: Mapping[int, int]) -> None:
        self.indexes = sorted(merged)
        self.cumulative = list(itertools.accumulate(merged[index] for index in self.indexes))

    def at(self, q: float) -> float | None:
        """The q-quantile (0..1): the first bucket whose cumulative count reaches ``ceil(q * total)``; None when
        the histogram is empty."""
        total = self.cumulative[-1] if self.cumulative else 0
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))
        return bucket_value(self.indexes[bisect.bisect_left(self.cumulative, rank)])


def quantile(merged: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a merged histogram, or None when it is empty."""
    return Quantiles(merged).at(q)
