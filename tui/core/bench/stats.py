"""Percentiles, summaries and histograms for benchmark figures.

Percentiles use linear interpolation between closest ranks (numpy's default, ``method="linear"``),
so p50 of an even count is the mean of the two middle values. Histograms are linear: ``bins``
equal-width bins from the smallest to the largest value (a single value gets one bin).
:class:`LagHistogram` keeps event-loop lag in fixed 0.1 ms bins so its memory does not grow with
the length of a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of already sorted values; None when empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    rank = (n - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


@dataclass(frozen=True)
class Summary:
    """count, mean, min, p50, p90, p99, max of one figure (same unit as the input)."""

    count: int
    mean: float | None
    min: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> "Summary":
        v = sorted(x for x in values if x is not None and not math.isnan(x))
        if not v:
            return cls(0, None, None, None, None, None, None)
        return cls(len(v), sum(v) / len(v), v[0], percentile(v, 50), percentile(v, 90),
                   percentile(v, 99), v[-1])

    def to_dict(self) -> dict:
        return {k: (round(x, 3) if isinstance(x, float) else x) for k, x in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Summary":
        d = d or {}
        return cls(int(d.get("count", 0)), *(d.get(k) for k in ("mean", "min", "p50", "p90", "p99", "max")))


@dataclass(frozen=True)
class Histogram:
    """Equal-width bins: ``counts[i]`` values lie in ``[edges[i], edges[i+1])`` (last bin closed)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: Iterable[float], bins: int = 20) -> "Histogram":
        v = [x for x in values if x is not None and not math.isnan(x)]
        if not v:
            return cls((), ())
        lo, hi = min(v), max(v)
        if hi <= lo:
            return cls((lo, hi), (len(v),))
        width = (hi - lo) / bins
        counts = [0] * bins
        for x in v:
            counts[min(int((x - lo) / width), bins - 1)] += 1
        return cls(tuple(lo + i * width for i in range(bins)) + (hi,), tuple(counts))

    def to_dict(self) -> dict:
        return {"edges": [round(e, 3) for e in self.edges], "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Histogram":
        d = d or {}
        return cls(tuple(d.get("edges", ())), tuple(d.get("counts", ())))


class LagHistogram:
    """Event-loop lag in fixed 0.1 ms bins up to 1 s (plus one overflow bin): bounded memory."""

    BIN_MS = 0.1
    NBINS = 10_000

    def __init__(self) -> None:
        self.counts = [0] * (self.NBINS + 1)
        self.n = 0
        self.max_ms = 0.0

    def add(self, lag_ms: float) -> None:
        lag_ms = max(lag_ms, 0.0)
        self.counts[min(int(lag_ms / self.BIN_MS), self.NBINS)] += 1
        self.n += 1
        if lag_ms > self.max_ms:
            self.max_ms = lag_ms

    def quantile(self, q: float) -> float | None:
        """Upper edge of the bin holding the ``q``-th percentile (an upper bound, 0.1 ms steps)."""
        if not self.n:
            return None
        need = math.ceil(self.n * q / 100.0)
        acc = 0
        for i, c in enumerate(self.counts):
            acc += c
            if acc >= max(need, 1):
                return min(round((i + 1) * self.BIN_MS, 4), self.max_ms) if i < self.NBINS else self.max_ms
        return self.max_ms
