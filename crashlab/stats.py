"""The one percentile the bench and the soak report: nearest rank, so a p99 is a sample
that happened, not an interpolation between two."""

from __future__ import annotations


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
