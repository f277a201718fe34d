"""The scaling phase's pure parts (bench/phases/scaling.py, bench/report/): streams spread
round-robin across instances, each configuration's figure from its probes, the ratio
to one worker and the verdicts that never credit a limit not found or the harness's
own. No server is started."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bench.load.turns import url_for
from bench.phases.harness import Settings
from bench.phases.scaling import (
    DEFAULT_SEEDS,
    INSTANCES,
    SINGLE,
    WORKERS,
    config_entry,
    judged,
    ratio,
    seed_levels,
)
from bench.phases.stall_free import Probes, next_level
from bench.processes import cpu_list
from bench.report.judge import evaluate
from bench.report.page import markdown
from bench.verdicts import HARNESS_LIMITED, NOT_MEASURED, NOT_PROBED

from support.bench_results import saved_run


def test_a_rounds_streams_alternate_between_the_instances() -> None:
    command = {"url": "ws://a/ws", "urls": ["ws://a/ws", "ws://b/ws"]}
    urls = [url_for(command, index) for index in range(7)]
    assert urls[:4] == ["ws://a/ws", "ws://b/ws", "ws://a/ws", "ws://b/ws"]
    assert Counter(url_for(command, i) for i in range(64)) == {"ws://a/ws": 32, "ws://b/ws": 32}


def test_one_instance_or_none_keeps_the_single_url() -> None:
    assert url_for({"url": "ws://a/ws"}, 5) == "ws://a/ws"
    assert url_for({"url": "http://stub", "urls": []}, 3) == "http://stub"


def test_the_configurations_pin_like_the_issue_asks() -> None:
    assert cpu_list(0) == "0" and cpu_list((0, 1)) == "0,1"
    assert WORKERS.pinning(True) == "0,1"  # one process tree on both cores
    assert INSTANCES.pinning(True) == "0 + 1"  # one process per core
    assert SINGLE.pinning(False) == "unpinned"
    assert (SINGLE.cores, WORKERS.cores, INSTANCES.cores) == (1, 2, 2)
    assert (WORKERS.processes, WORKERS.workers, INSTANCES.processes) == (1, 2, 2)


def summary(level: int, clean: bool, baseline_stalls: int = 0, busy: float = 0.5) -> Any:
    return {
        "level": level,
        "clean": clean,
        "streams": level * 2,
        "stalls": 0 if clean else 3,
        "max_gap_ms": 30.0,
        "failed": 0,
        "lost_tokens": 0,
        "errors": [],
        "baseline_max_gap_ms": 25.0,
        "baseline_stalls": baseline_stalls,
        "baseline_failed": 0,
        "parley_busy": busy,
    }


def probes(*found: dict[str, Any]) -> Probes:
    return {p["level"]: p for p in found}


def test_a_configurations_figure_is_its_largest_clean_level_below_the_first_unclean() -> None:
    found = probes(summary(64, True), summary(96, True, busy=1.7), summary(128, False, busy=1.9))
    entry = config_entry(WORKERS, found, pinned=True)
    assert (entry["max_streams"], entry["first_unclean"], entry["probed"]) == (96, 128, True)
    assert entry["parley_busy"] == 1.9  # at the limit: did Parley use its two cores?
    assert not entry["baseline_stalled"]
    assert [p["level"] for p in entry["probes"]] == [64, 96, 128]
    clean = config_entry(WORKERS, probes(summary(64, True)), pinned=False)
    assert (clean["probed"], clean["first_unclean"], clean["cpus"]) == (False, None, "unpinned")


def test_a_baseline_that_stalled_at_the_first_unclean_level_marks_the_harness() -> None:
    found = probes(summary(64, True), summary(128, False, baseline_stalls=2))
    entry = judged([config_entry(INSTANCES, found, pinned=True)], cores=8)[0]
    assert entry["baseline_stalled"]
    assert entry["limit"].startswith("harness-limited: the baseline")


def test_the_ratio_is_to_one_workers_figure_and_fewer_than_four_cores_are_noted() -> None:
    single = config_entry(SINGLE, probes(summary(50, True), summary(60, False)), pinned=True)
    two = config_entry(WORKERS, probes(summary(95, True), summary(100, False)), pinned=True)
    entries = judged([single, two], cores=2)
    assert entries[0]["ratio"] == 1.0 and entries[0]["limit"] == ""  # one core: its own
    assert entries[1]["ratio"] == 1.9
    assert "2 cores" in entries[1]["limit"]
    assert judged([single, two], cores=4)[1]["limit"] == ""
    assert ratio(two, {**single, "max_streams": 0}) is None


def test_the_first_probes_follow_one_workers_figure() -> None:
    assert seed_levels((64, 16, 64), None) == (16, 64)
    assert seed_levels((), {"max_streams": 100}) == (100, 180)
    assert seed_levels((), {"max_streams": 0}) == DEFAULT_SEEDS
    assert seed_levels((), None) == DEFAULT_SEEDS


def test_the_bisection_is_the_stall_free_phases() -> None:
    settings = Settings(2, ("ws",), 2, 0, 0, None, 0, 0, 0, 0.0, 0)  # type: ignore[arg-type]
    assert next_level({}, settings) == 1
    assert next_level(probes(summary(64, True)), settings) == 128
    assert next_level(probes(summary(64, True), summary(128, False)), settings) == 96
    assert next_level(probes(summary(64, True), summary(68, False)), settings) is None
    settings.stall_probe_up = False  # quick mode: no doubling past the last clean level
    assert next_level(probes(summary(64, True)), settings) is None


# -- verdicts and the report from a saved run --------------------------------------------


def run(single: Probes, workers: Probes, instances: Probes, cores: int) -> dict[str, Any]:
    entries = judged(
        [
            config_entry(SINGLE, single, pinned=True, reused=True),
            config_entry(WORKERS, workers, pinned=True),
            config_entry(INSTANCES, instances, pinned=True),
        ],
        cores,
    )
    scaling = {
        "source": "src",
        "path": "ws",
        "interval_ms": 20.0,
        "machine_cores": cores,
        "pinned": True,
        "configs": entries,
    }
    results = saved_run(scaling=[scaling])
    # what --from-json reads back
    results = json.loads(json.dumps(results))
    results["targets"] = evaluate(results)
    return results


def verdicts(results: dict[str, Any]) -> dict[str, str]:
    return {
        row["key"]: row["verdict"]
        for row in results["targets"]
        if row["key"] in ("workers_2", "instances_2")
    }


ONE = probes(summary(100, True), summary(110, False))


def test_two_cores_that_hold_twice_the_streams_meet_the_target() -> None:
    workers = probes(summary(190, True), summary(200, False))
    instances = probes(summary(150, True), summary(160, False))
    found = run(ONE, workers, instances, cores=8)
    assert verdicts(found) == {
        "workers_2": "met",
        "instances_2": "missed (0.30 x short, x1.2 below)",
    }
    row = next(r for r in found["targets"] if r["key"] == "workers_2")
    assert row["value"] == 1.9
    assert row["note"].startswith("190 vs 100 streams clean; first unclean 200 vs 110")


def test_a_limit_never_reached_is_not_probed_never_met() -> None:
    workers = probes(summary(400, True))  # every level clean: the limit is unknown
    found = verdicts(run(ONE, workers, workers, cores=8))
    assert found == {"workers_2": NOT_PROBED, "instances_2": NOT_PROBED}
    unprobed_single = probes(summary(100, True))
    ratios = verdicts(run(unprobed_single, probes(summary(150, False)), ONE, cores=8))
    assert ratios["workers_2"] == NOT_PROBED


def test_the_harness_limit_is_no_verdict_on_parley() -> None:
    shared = probes(summary(100, True), summary(120, False, baseline_stalls=4))
    short = probes(summary(120, True), summary(130, False))
    found = run(ONE, shared, short, cores=2)
    assert verdicts(found) == {
        "workers_2": HARNESS_LIMITED,  # the baseline stalled at 120 too
        "instances_2": f"{HARNESS_LIMITED}; missed (0.60 x short, x1.5 below)",  # 2 cores
    }
    met = verdicts(run(ONE, probes(summary(200, True), summary(220, False)), short, cores=2))
    assert met["workers_2"] == "met"  # shared cores held it anyway: a lower bound, met


def test_the_report_renders_the_scaling_table_and_targets() -> None:
    workers = probes(summary(190, True, busy=1.8), summary(200, False, busy=1.95))
    text = markdown(run(ONE, workers, probes(summary(64, True)), cores=2))
    assert "### Scaling across cores" in text
    assert "| src | `--workers 2` | 1 x 2 | 0,1 | 190 | 200 | yes | x1.90 | 1.95 cores |" in text
    assert "| src | one worker (stall-free phase) | 1 x 1 | 0 | 100 | 110 | yes | x1.00 |" in text
    assert "| src | two instances | 2 x 1 | 0 + 1 | 64 | - | **not probed** | x0.64 |" in text
    assert "200 stalled" in text
    row = "| `--workers 2` stall-free streams vs one worker | ws | ≥ 1.80 x | 1.90 x | met |"
    assert row in text


def test_a_run_without_the_phase_is_not_measured() -> None:
    results = run(ONE, ONE, ONE, cores=8)
    del results["scaling"]
    assert verdicts({**results, "targets": evaluate(results)}) == {
        "workers_2": NOT_MEASURED,
        "instances_2": NOT_MEASURED,
    }
