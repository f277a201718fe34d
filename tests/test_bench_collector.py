"""The harness's reading of each Parley's collector pauses (bench/collector.py): what
a run added to ``parley_gc_pause_seconds``, read with Prometheus's own parser from
the exposition Parley's registry writes. No server is started."""

from __future__ import annotations

import pytest
from bench import collector
from bench.report.page import markdown
from prometheus_client import generate_latest

from parley.observability import metrics
from support.bench_results import saved_run


def exposition() -> str:
    return generate_latest(metrics.REGISTRY).decode()


def test_a_run_reports_what_it_added_to_each_generation() -> None:
    before = collector.parse(exposition())
    metrics.GC_PAUSE_SECONDS.labels("2").observe(0.050)  # a stall at 20 ms tokens
    metrics.GC_PAUSE_SECONDS.labels("2").observe(0.003)
    metrics.GC_PAUSE_SECONDS.labels("0").observe(0.0004)
    added = collector.pauses(before, collector.parse(exposition()))
    assert added is not None
    assert added["2"] == {
        "collections": 2,
        "total_ms": pytest.approx(53),
        "longest_at_most_ms": 75,  # the bucket the 50 ms pause fell in
        "over_stall": 1,
    }
    assert added["0"]["collections"] == 1
    assert added["0"]["longest_at_most_ms"] == 1
    assert added["0"]["over_stall"] == 0


def test_the_stall_is_a_bucket_bound_parley_exports() -> None:
    metrics.GC_PAUSE_SECONDS.labels("1").observe(0.001)
    histograms = collector.parse(exposition())
    assert histograms is not None
    assert collector.STALL_SECONDS in histograms["1"].buckets  # else "over a stall" is a guess


def test_a_generation_without_collections_reports_none() -> None:
    same = collector.parse(exposition())
    added = collector.pauses(same, same)
    assert added is not None
    assert all(p["collections"] == 0 and p["longest_at_most_ms"] == 0 for p in added.values())


def test_a_tree_without_the_metric_is_not_exported_rather_than_zero() -> None:
    assert collector.parse("# HELP other_total x\n# TYPE other_total counter\n") is None
    assert collector.pauses(None, None) is None
    report = markdown(
        saved_run(
            targets=[],
            collector=[
                {"source": "old", "generations": None},
                {
                    "source": "new",
                    "generations": {
                        "2": {
                            "collections": 3,
                            "total_ms": 90.0,
                            "longest_at_most_ms": 75.0,
                            "over_stall": 2,
                        }
                    },
                },
            ],
        )
    )
    assert "### The garbage collector" in report
    assert "| old | not exported |" in report
    assert "| new | 2 | 3 | 90 ms | ≤ 75 ms | 2 |" in report
