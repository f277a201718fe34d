"""The garbage collector's pauses in each Parley under test, from its own ``/metrics``.

A collection stops every stream on the event loop for as long as it runs, so
a long one is a stall that the stall and burst phases see only as a gap.
Parley times every collection (``parley_gc_pause_seconds``, by generation);
the harness reads the histogram when an instance is ready and again before
it stops, and reports the difference: how many collections of each
generation the run's load caused, how long they stopped the loop in all,
a bound on the longest, and how many were longer than a stall. A tree from
before the metric reports "not exported" rather than zeros.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.measure import HTTPRefused, http_text
from bench.servers import METRICS_TOKEN

FAMILY = "parley_gc_pause_seconds"
STALL_SECONDS = 0.04  # the paced profile's stall (twice its 20 ms interval), a bucket bound
COLUMNS = (
    "source",
    "generation",
    "collections",
    "paused in all",
    "longest",
    f"over {STALL_SECONDS * 1000:g} ms (a stall)",
)


@dataclass(frozen=True)
class Histogram:
    buckets: Mapping[float, float]  # upper bound in seconds -> cumulative count
    total: float  # seconds

    @property
    def count(self) -> float:
        return self.buckets.get(math.inf, 0.0)

    def since(self, earlier: Histogram | None) -> Histogram:
        if earlier is None:
            return self
        buckets = {b: n - earlier.buckets.get(b, 0.0) for b, n in self.buckets.items()}
        return Histogram(buckets, self.total - earlier.total)

    def summary(self) -> dict[str, float]:
        return {
            "collections": self.count,
            "total_ms": self.total * 1000,
            "longest_at_most_ms": self._longest_bound() * 1000,
            "over_stall": self.count - self.buckets.get(STALL_SECONDS, 0.0),
        }

    def _longest_bound(self) -> float:
        """The smallest bucket bound that every collection fell within (0: none)."""
        if self.count == 0:
            return 0.0
        return min(bound for bound, n in self.buckets.items() if n >= self.count)


Histograms = dict[str, Histogram]  # by generation


async def read(url: str) -> Histograms | None:
    """The pause histograms of the Parley at ``url`` (``None`` if it exports none)."""
    authorization = {"authorization": f"Bearer {METRICS_TOKEN}"}
    try:
        return parse(await http_text(f"{url}/metrics", headers=authorization))
    except (HTTPRefused, ValueError):  # no /metrics, or none a Prometheus parser reads
        return None


def parse(exposition: str) -> Histograms | None:
    buckets: dict[str, dict[float, float]] = {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != FAMILY:
            continue
        for sample in family.samples:
            generation = sample.labels["generation"]
            if sample.name == f"{FAMILY}_bucket":
                buckets.setdefault(generation, {})[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{FAMILY}_sum":
                totals[generation] = sample.value
    found = {g: Histogram(b, totals.get(g, 0.0)) for g, b in buckets.items()}
    return found or None


def pauses(before: Histograms | None, after: Histograms | None) -> dict[str, Any] | None:
    """What the run's load added, per generation (``None``: the tree exports no pauses)."""
    if after is None:
        return None
    earlier = before or {}
    return {g: h.since(earlier.get(g)).summary() for g, h in sorted(after.items())}


def table_rows(entries: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in entries:
        generations = entry.get("generations")
        if generations is None:
            rows.append([entry["source"], "not exported", "", "", "", ""])
            continue
        for generation, p in generations.items():
            rows.append(
                [
                    entry["source"],
                    generation,
                    f"{p['collections']:,.0f}",
                    f"{p['total_ms']:,.0f} ms",
                    _longest(p["longest_at_most_ms"]),
                    f"{p['over_stall']:,.0f}",
                ]
            )
    return rows


def _longest(bound_ms: float) -> str:
    if bound_ms == 0:
        return ""
    return "over 1 s" if math.isinf(bound_ms) else f"≤ {bound_ms:g} ms"
