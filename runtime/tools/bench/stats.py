"""Percentiles of a list of samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """p50 and p99 (linear interpolation between closest ranks) of ``n`` samples.

    For rates (higher is better) ``p99`` is the 1st percentile instead: the
    slow tail, which is what a p99 means for a latency.
    """

    n: int
    p50: float
    p99: float
    mean: float
    best: float
    worst: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(sorted_values[lo])
    frac = pos - lo
    return float(sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac)


def summarize(values: Sequence[float], *, higher_is_better: bool = False) -> Summary:
    ordered = sorted(values)
    tail = percentile(ordered, 1.0 if higher_is_better else 99.0)
    best, worst = (ordered[-1], ordered[0]) if higher_is_better else (ordered[0], ordered[-1])
    return Summary(
        n=len(ordered),
        p50=percentile(ordered, 50.0),
        p99=tail,
        mean=sum(ordered) / len(ordered),
        best=float(best),
        worst=float(worst),
    )
