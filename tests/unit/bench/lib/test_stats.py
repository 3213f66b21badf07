"""The statistics every benchmark reports: one percentile, one latency summary, one median of
paired figures, so that the same name means the same quantity in every table."""

import math

import numpy as np
import pytest

from bench.lib.stats import Latency, Spread, classification_scores, percentile, ratio


@pytest.mark.parametrize("q", [0, 1, 25, 50, 95, 99, 100])
def test_percentile_is_numpys_linear_interpolation(q: float) -> None:
    values = list(np.random.default_rng(0).exponential(10.0, size=37))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_one_value_and_of_none() -> None:
    assert percentile([4.0], 95) == 4.0
    assert math.isnan(percentile([], 50))  # a level where every request failed keeps its row


def test_percentile_does_not_depend_on_order() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5


def test_latency_summary() -> None:
    summary = Latency.of([1.0, 2.0, 3.0, 10.0])
    assert (summary.calls, summary.p50_ms, summary.mean_ms) == (4, 2.5, 4.0)
    assert summary.p99_ms == pytest.approx(float(np.percentile([1, 2, 3, 10], 99)))
    assert math.isnan(Latency.of([]).mean_ms)


def test_spread_is_the_median_with_its_range() -> None:
    spread = Spread.of([1.1, 0.9, 5.0])  # one disturbed round
    assert (spread.median, spread.range) == (1.1, (0.9, 5.0))
    assert Spread.of([1.0, 2.0]).median == 1.5


def test_no_values_is_an_error_not_a_median() -> None:
    with pytest.raises(ValueError):
        Spread.of([])


def test_ratio_is_nan_where_undefined() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(float("nan"), 2.0))
    assert math.isnan(ratio(2.0, float("nan")))


def test_macro_f1_weighs_a_rare_class_like_a_common_one() -> None:
    expected = ["a"] * 9 + ["b"]
    scores = classification_scores(expected, ["a"] * 10)  # never says "b"
    assert scores["accuracy"] == pytest.approx(0.9)
    assert scores["macro_f1"] == pytest.approx((18 / 19) / 2)
    assert classification_scores(["x", "y"], ["x", "y"]) == {"accuracy": 1.0, "macro_f1": 1.0}
