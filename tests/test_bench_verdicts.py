"""How the benchmark judges: per path, never on too few samples, never a limit it did
not probe (bench/verdicts.py, bench/report/judge.py). Built from synthetic streams; no
server is started."""

from __future__ import annotations

from typing import Any

import pytest
from bench.common import Profile, StreamResult
from bench.figures import Cell, Round, Usage, summarise
from bench.report.judge import evaluate
from bench.report.page import markdown
from bench.stats import spread
from bench.verdicts import NOT_MEASURED, NOT_PROBED, TARGETS

from support.bench_results import saved_run

PROBE = Profile(8, 5)
PACED = Profile(64, 20)


def test_a_figure_within_the_target_is_met_and_one_over_is_missed_by_how_much() -> None:
    target = TARGETS["ttft_1_p50"]
    assert target.judge(1.2, n=200)["verdict"] == "met"
    row = target.judge(3.0, n=200)
    assert row["verdict"] == "missed (1.50 ms over, x2.0)"
    assert row["measured"] == "3 ms (n=200)"
    higher = TARGETS["stall_free"]
    assert higher.judge(250)["verdict"] == "met"
    assert higher.judge(100)["verdict"] == "missed (100 streams short, x2.0 below)"
    assert TARGETS["burst_stalls"].judge(3.0)["verdict"] == "missed (3 stalls over)"


def test_a_p99_of_too_few_samples_gets_no_verdict_and_no_value() -> None:
    row = TARGETS["ttft_1_p99"].judge(2.0, n=20, q=0.99, path="sse")
    assert row["verdict"] == "too few samples (n=20, need 200)"
    assert row["measured"] == "n=20 < 200"
    assert row["path"] == "sse"
    assert TARGETS["ttft_1_p99"].judge(2.0, n=200, q=0.99)["verdict"] == "met"


def test_missing_figures_say_why() -> None:
    assert TARGETS["cpu_per_token"].judge(None)["verdict"] == NOT_MEASURED
    assert TARGETS["stall_free"].judge(None, missing=NOT_PROBED)["verdict"] == NOT_PROBED
    assert TARGETS["cpu_per_token"].judge(float("nan"))["verdict"] == NOT_MEASURED


# -- the report's verdicts from a synthetic run ----------------------------------------


def stream(ttft: float, gap: float = 5.0, tokens: int = 8) -> StreamResult:
    return StreamResult(
        ttft=ttft,
        gaps=[gap] * (tokens - 1),
        accepted=ttft / 2,
        tokens=tokens,
        expected=tokens,
        frames=tokens,
        status="complete",
    )


def cell(
    level: int, kind: str, source: str | None, ttft: float, count: int, usage: Usage | None = None
) -> Cell:
    found = Cell(level, kind if source else "baseline", kind, source)
    found.add(Round([stream(ttft) for _ in range(count)], usage or Usage(wall=1.0)))
    return found


def summarised(cells: list[Cell], profile: Profile) -> list[dict[str, Any]]:
    base = next(c for c in cells if c.source is None)
    return [summarise(c, profile, base) for c in cells]


def run(first_token_count: int, stall_probed: bool) -> dict[str, Any]:
    probes = [
        cell(1, "openai", None, 0.5, first_token_count),
        cell(1, "ws", "src", 1.5, first_token_count),  # +1.0 ms: met
        cell(1, "ws-new", "src", 4.0, first_token_count),  # +3.5 ms: missed
        cell(1, "sse", "src", 2.5, first_token_count),  # +2.0 ms: p50 missed, p99 met
    ]
    # 32 streams x 8 tokens = 256 tokens; 25.6 ms of server CPU = 100 µs/token, plus
    # Redis (5.12 ms: 20 µs) and Postgres backends (2.56 ms: 10 µs)
    cpu = Usage(wall=1.0, parley=0.0256, redis=0.00512, postgres=0.00256, postgres_shared=1.0)
    ladder = [
        cell(32, "openai", None, 1.0, 32),
        cell(32, "ws", "src", 2.0, 32, cpu),
        cell(32, "sse", "src", 2.0, 32, Usage(wall=1.0, parley=0.01024)),
    ]
    stall = {
        "source": "src",
        "path": "ws",
        "max_streams": 32,
        "first_unclean": 48 if stall_probed else None,
        "probed": stall_probed,
        "parley_cores": 1,
        "per_core": 32.0,
        "probes": [],
    }
    results = saved_run(
        first_token={
            "profile": {"tokens": 8, "interval_ms": 5},
            "samples_per_path": first_token_count,
            "pause_ms": 50.0,
            "cells": summarised(probes, PROBE),
        },
        ladders=[
            {
                "name": "openai-64x20ms",
                "vendor": "openai",
                "profile": {"tokens": 64, "interval_ms": 20},
                "levels": [32],
                "stopped_after": None,
                "cells": summarised(ladder, PACED),
            }
        ],
        stall_free=[stall],
        peers=[
            {"name": "litellm", "started": False, "error": "BenchError: pip failed"},
            {"name": "floor", "started": True},
        ],
    )
    results["targets"] = evaluate(results)
    return results


def verdicts(results: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(row["key"], row["path"]): row["verdict"] for row in results["targets"]}


def test_first_token_is_judged_per_path() -> None:
    found = verdicts(run(first_token_count=200, stall_probed=True))
    assert found["ttft_1_p50", "ws"] == "met"
    assert found["ttft_1_p50", "ws-new"].startswith("missed (2 ms over")
    assert found["ttft_1_p50", "sse"].startswith("missed (0.50 ms over")
    assert found["ttft_1_p99", "ws"] == "met"
    assert found["ttft_1_p99", "sse"] == "met"
    assert found["ttft_1_p99", "ws-new"].startswith("missed")


def test_first_token_p99_of_too_few_probes_is_not_judged() -> None:
    found = verdicts(run(first_token_count=20, stall_probed=True))
    assert found["ttft_1_p50", "ws"] == "met"  # a p50 needs 4
    for path in ("ws", "ws-new", "sse"):
        assert found["ttft_1_p99", path] == "too few samples (n=20, need 200)"


def test_cpu_per_token_adds_redis_and_postgres_but_not_the_shared_processes() -> None:
    results = run(first_token_count=200, stall_probed=True)
    rows = {row["path"]: row for row in results["targets"] if row["key"] == "cpu_per_token"}
    assert rows["ws"]["value"] == pytest.approx(130.0)
    assert "server 100, Redis 20, Postgres backends 10 µs" in rows["ws"]["note"]
    assert rows["sse"]["value"] == pytest.approx(40.0)
    assert rows["sse"]["verdict"] == "met"


def test_a_stall_free_limit_that_was_not_found_is_not_probed() -> None:
    found = verdicts(run(first_token_count=200, stall_probed=False))
    assert found["stall_free", "ws"] == NOT_PROBED
    assert found["stall_free", "sse"] == NOT_MEASURED
    probed = verdicts(run(first_token_count=200, stall_probed=True))
    assert probed["stall_free", "ws"].startswith("missed (168 streams short")


def test_the_report_shows_counts_paths_and_each_peer() -> None:
    text = markdown(run(first_token_count=20, stall_probed=False))
    assert "| figure | path | target |" in text
    assert "n=20 < 200" in text
    assert "litellm was not measured**: BenchError: pip failed" in text
    assert "Peer: **floor** (bench/floor.py: the least work" in text
    assert "up to 32 streams; the limit was **not probed**" in text
    row = "| stall-free streams at 50 tokens/s, per core | ws | ≥ 200 streams | not probed |"
    assert row in text


def test_commit_lag_p99_of_a_small_persistence_burst_is_not_judged() -> None:
    results = run(first_token_count=200, stall_probed=True)

    def entry(replies: int) -> dict[str, Any]:
        lags = [float(i % 50) for i in range(replies)]
        return {
            "source": "src",
            "streams": replies // 2,
            "profile": {"tokens": 16, "interval_ms": 5},
            "failed": 0,
            "rows_per_s": 300.0,
            "lag_ms": spread(lags),
        }

    results["persistence"] = [entry(64)]
    small = verdicts({**results, "targets": evaluate(results)})
    assert small["commit_lag_p99", "ws"] == "too few samples (n=64, need 200)"
    assert small["rows_per_s", "ws"].startswith("missed")
    results["persistence"] = [entry(512)]
    assert verdicts({**results, "targets": evaluate(results)})["commit_lag_p99", "ws"] == "met"
