"""Percentiles that carry their sample count, and when a percentile may be reported.

A percentile is only as good as the samples beyond it: the p99 of 20 samples is
their maximum. :func:`min_samples` asks for at least two samples above the
percentile (``n >= 2 / (1 - q)``: 4 for the p50, 20 for the p90, 200 for the
p99); fewer, and the figure is shown with its count and never judged.
Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import percentile

SAMPLES_BEYOND = 2  # samples a percentile needs above it to be more than the maximum


def min_samples(q: float) -> int:
    """The fewest samples for which the ``q`` percentile is reported (200 for the p99)."""
    if not 0 < q < 1:
        raise ValueError(f"a percentile is strictly between 0 and 1, not {q}")
    return math.ceil(round(SAMPLES_BEYOND / (1 - q), 9))


def key(q: float) -> str:
    """``0.99`` -> ``"p99"``, ``0.5`` -> ``"p50"``, ``0.999`` -> ``"p99.9"``."""
    return f"p{100 * q:g}"


@dataclass(frozen=True)
class Quantile:
    """The ``q`` percentile of ``n`` samples."""

    q: float
    value: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float], q: float) -> Quantile:
        return cls(q, percentile(values, q), len(values))

    @property
    def reportable(self) -> bool:
        return self.n >= min_samples(self.q) and not math.isnan(self.value)

    def minus(self, other: Quantile) -> Quantile:
        """The difference of two percentiles, counted by the smaller sample."""
        return Quantile(self.q, self.value - other.value, min(self.n, other.n))


def spread(values: Sequence[float], points: Iterable[float] = (0.5, 0.99)) -> dict[str, float]:
    """``{"p50": …, "p99": …, "max": …, "n": …}``: the JSON form of a cell's figures."""
    out: dict[str, float] = {key(q): percentile(values, q) for q in points}
    out["max"] = max(values, default=math.nan)
    out["n"] = len(values)
    return out


def quantile_of(summary: Mapping[str, Any], q: float) -> Quantile:
    """A :class:`Quantile` back from :func:`spread`'s form (older files have no ``n``)."""
    return Quantile(q, float(summary.get(key(q), math.nan)), int(summary.get("n", 0)))


def shown(value: Quantile, digits: int = 1, signed: bool = False) -> str:
    """``"12.3 (n=240)"``; too few samples: ``"n=16 < 200"``, never the maximum as a p99."""
    if value.n == 0 or math.isnan(value.value):
        return "-"
    if not value.reportable:
        return f"n={value.n} < {min_samples(value.q)}"
    number = f"{value.value:+.{digits}f}" if signed else f"{value.value:,.{digits}f}"
    return f"{number} (n={value.n})"
