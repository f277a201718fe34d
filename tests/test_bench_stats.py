"""The benchmark's percentiles: each carries its sample count, and a p99 is never the
maximum of a handful of samples (bench/stats.py). No server is started."""

from __future__ import annotations

import math

import pytest
from bench.common import percentile
from bench.stats import Quantile, key, min_samples, quantile_of, shown, spread
from hypothesis import given
from hypothesis import strategies as st


def test_a_percentile_needs_two_samples_beyond_it() -> None:
    assert min_samples(0.99) == 200
    assert min_samples(0.9) == 20
    assert min_samples(0.5) == 4
    assert min_samples(0.999) == 2000
    with pytest.raises(ValueError):
        min_samples(1.0)


def test_percentile_keys() -> None:
    assert (key(0.5), key(0.99), key(0.999)) == ("p50", "p99", "p99.9")


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert math.isnan(percentile([], 0.5))


def test_the_p99_of_twenty_samples_is_their_maximum_and_is_not_reported() -> None:
    values = [float(v) for v in range(20)]
    p99 = Quantile.of(values, 0.99)
    assert p99.value == max(values)  # why a p99 needs many samples
    assert (p99.n, p99.reportable) == (20, False)
    assert shown(p99) == "n=20 < 200"


def test_a_p99_of_enough_samples_is_shown_with_its_count() -> None:
    p99 = Quantile.of([1.0] * 199 + [5.0], 0.99)
    assert p99.reportable
    assert shown(p99) == "1.0 (n=200)"
    assert shown(Quantile(0.99, 2.25, 300), digits=2, signed=True) == "+2.25 (n=300)"
    assert shown(Quantile(0.5, math.nan, 0)) == "-"


def test_a_difference_is_counted_by_the_smaller_sample() -> None:
    mine = Quantile(0.99, 9.0, 400)
    base = Quantile(0.99, 1.0, 150)
    difference = mine.minus(base)
    assert (difference.value, difference.n, difference.reportable) == (8.0, 150, False)


def test_spread_records_the_count_and_reads_back() -> None:
    values = [float(v) for v in range(250)]
    summary = spread(values)
    assert summary["n"] == 250
    assert summary["max"] == 249
    back = quantile_of(summary, 0.99)
    assert (back.value, back.n) == (summary["p99"], 250)
    assert quantile_of({"p99": 3.0}, 0.99).n == 0  # a file from before counts were kept


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=500), st.floats(0.01, 0.99))
def test_percentile_is_one_of_the_samples_and_ordered(values: list[float], q: float) -> None:
    found = Quantile.of(values, q)
    assert found.value in values
    assert found.n == len(values)
    assert min(values) <= found.value <= max(values)
    assert Quantile.of(values, min(0.99, q + 0.01)).value >= found.value
