"""Arrival times of a round's streams: all at once, or a Poisson process at a given
rate (bench/arrivals.py). No server is started."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from bench.arrivals import Arrivals, poisson_offsets
from hypothesis import given, settings
from hypothesis import strategies as st


def test_burst_starts_every_stream_at_once() -> None:
    assert Arrivals("burst").offsets(5, seed=1) == [0.0] * 5


def test_poisson_needs_a_rate_and_modes_are_checked() -> None:
    with pytest.raises(ValueError):
        Arrivals("poisson")
    with pytest.raises(ValueError):
        Arrivals("trickle", 10)


def test_the_same_seed_gives_the_same_arrivals_to_every_path_of_a_round() -> None:
    arrivals = Arrivals("poisson", 50)
    assert arrivals.offsets(100, seed=7) == arrivals.offsets(100, seed=7)
    assert arrivals.offsets(100, seed=7) != arrivals.offsets(100, seed=8)


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(0.5, 5000), seed=st.integers(0, 2**32 - 1))
def test_poisson_mean_inter_arrival_converges_to_one_over_the_rate(rate: float, seed: int) -> None:
    count = 20_000
    offsets = poisson_offsets(count, rate, random.Random(seed))
    gaps = [b - a for a, b in itertools.pairwise([0.0, *offsets])]
    assert all(gap >= 0 for gap in gaps)
    assert offsets == sorted(offsets)
    # exponential gaps: the mean's standard error is (1/rate)/sqrt(n), under 0.8 %
    # here, so 5 % is more than six standard errors
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.05)
    # and their spread is that of an exponential distribution (stdev = mean)
    assert statistics.stdev(gaps) == pytest.approx(1 / rate, rel=0.1)


def test_describe() -> None:
    assert "at once" in Arrivals().describe()
    assert "20 streams/s" in Arrivals("poisson", 20).describe()
