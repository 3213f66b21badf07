"""The statistics every benchmark reports, computed one way: a p50 in one table is the same
quantity as a p50 in another."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), NaN when empty.

    NaN rather than an error: a level where every request failed still gets its row.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Latency:
    """Summary of per-call latencies in milliseconds."""

    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, millis: Sequence[float]) -> Latency:
        mean = statistics.fmean(millis) if millis else float("nan")
        return cls(len(millis), percentile(millis, 50), percentile(millis, 99), mean)


@dataclass(frozen=True)
class Spread:
    """The median of paired figures with their lowest and highest.

    Paired benchmarks judge on the median: one disturbed round moves a median less than it
    moves a mean; the range shows how far single rounds scatter.
    """

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values))

    @property
    def range(self) -> tuple[float, float]:
        return (self.low, self.high)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; NaN where either is NaN or the denominator is zero."""
    if numerator != numerator or denominator != denominator or not denominator:
        return float("nan")
    return numerator / denominator


def classification_scores(expected: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 of predicted labels: macro-F1 weighs every class the same, so a
    classifier that ignores rare intents cannot hide behind the common ones."""
    from sklearn.metrics import f1_score

    hits = sum(bool(a == b) for a, b in zip(expected, predicted, strict=True))
    return {
        "accuracy": hits / len(expected),
        "macro_f1": float(f1_score(expected, predicted, average="macro")),
    }
