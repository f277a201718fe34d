"""Stall-free streams across cores (issue 13): one worker, ``--workers 2``, two instances.

For one source tree, the same figure as :func:`bench.phases.stall_free.stall_free` (the most
concurrent WebSocket streams at 50 tokens/s with no stall and no lost token,
each level probed against the baseline straight to the stub, bisected the same
way) for three configurations:

* ``single``: one ``parley serve`` on CPU 0 (the stall-free phase's figure when
  the run has one, else probed here);
* ``workers``: ``parley serve --workers 2``, uvicorn's supervisor and its two
  workers on one port, pinned to CPUs 0 and 1 together;
* ``instances``: two ``parley serve`` processes on two ports sharing the tree's
  database and Redis, one per core; a round's streams alternate between them.

Each figure is set against one worker's. On a machine with fewer than
:data:`HARNESS_CORES` cores the stub, the load generator and Redis share the
second core with Parley, and when the baseline itself stalls at a level the
harness, not Parley, set the limit: the entry says so (``limit``) and the report
gives no verdict the figure cannot carry.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import Profile
from bench.phases.harness import Harness, Route
from bench.phases.rounds import warm_up
from bench.phases.stall_free import Probes, bisect, bounds, probe
from bench.processes import Cpus, cpu_list
from bench.servers import Instance, Source
from bench.verdicts import TARGETS

TRANSPORT = "ws"
HARNESS_CORES = 4  # Parley's two cores, plus two for the stub, generator, Redis, Postgres
DEFAULT_SEEDS = (32, 64)  # first probes when no one-worker figure suggests better


@dataclass(frozen=True)
class Config:
    """One way of serving on two cores (or one, for the reference)."""

    key: str  # single | workers | instances
    label: str
    workers: int  # uvicorn workers per process
    cpus: tuple[Cpus, ...]  # one entry per process: its core(s) when pinning

    @property
    def processes(self) -> int:
        return len(self.cpus)

    @property
    def cores(self) -> int:
        return len({cpu for cpus in self.cpus for cpu in _cores(cpus)})

    def pinning(self, pinned: bool) -> str:
        return " + ".join(cpu_list(cpus) for cpus in self.cpus) if pinned else "unpinned"


SINGLE = Config("single", "one worker", 1, (0,))
WORKERS = Config("workers", "--workers 2", 2, ((0, 1),))
INSTANCES = Config("instances", "two instances", 1, (0, 1))
CONFIGS = (SINGLE, WORKERS, INSTANCES)


def _cores(cpus: Cpus) -> tuple[int, ...]:
    return (cpus,) if isinstance(cpus, int) else tuple(cpus)


# -- the phase ---------------------------------------------------------------------------


async def scaling(
    h: Harness, source: Source, profile: Profile, single_known: dict[str, Any] | None
) -> dict[str, Any]:
    """The three configurations' stall-free streams; ``single_known`` is the run's
    stall-free entry for ``source`` on WebSockets (None, or no probes: probe one worker
    here)."""
    await h.set_profile(profile)
    pinned = h.children.pin
    entries: list[dict[str, Any]] = []
    for config in CONFIGS:
        if config is SINGLE and single_known is not None and single_known["probes"]:
            probes = {int(p["level"]): p for p in single_known["probes"]}
            entries.append(config_entry(config, probes, pinned, reused=True))
            continue
        seeds = seed_levels(h.settings.scaling_levels, entries[0] if entries else None)
        try:
            probes = await measure_config(h, source, profile, config, seeds)
        except Exception as error:  # one configuration failing leaves the others standing
            entries.append(failed_entry(config, pinned, error))
            continue
        entries.append(config_entry(config, probes, pinned))
    cores = os.cpu_count() or 1
    return {
        "source": source.label,
        "path": TRANSPORT,
        "interval_ms": profile.interval_ms,
        "machine_cores": cores,
        "pinned": pinned,
        "configs": judged(entries, cores),
    }


async def measure_config(
    h: Harness, source: Source, profile: Profile, config: Config, seeds: Sequence[int]
) -> Probes:
    """Start ``config``'s processes, probe the seed levels upwards until one is unclean,
    bisect as the stall-free phase does, and stop them."""
    instances: list[Instance] = []
    try:
        for index, cpus in enumerate(config.cpus):
            # every process on the tree's one database and Redis
            name = f"parley-{config.key}{index}"
            instance = await h.start_instance(name, source, cpu=cpus, workers=config.workers)
            instances.append(instance)
        path = Route(f"{TRANSPORT}/{config.key}", TRANSPORT, instances[0], others=(*instances[1:],))
        await warm_up(h, [path], profile)
        probes: Probes = {}
        for level in sorted(set(seeds)):
            if bounds(probes)[1] is not None:
                break  # an unclean level found: the bisection takes it from here
            probes[level] = await probe(h, path, level, profile)
        return await bisect(h, path, profile, probes)
    finally:
        for instance in instances:
            await h.stop_instance(instance)


def seed_levels(asked: Sequence[int], single: dict[str, Any] | None) -> tuple[int, ...]:
    """``--scaling-levels`` if given; else one worker's limit and the target multiple of
    it (a clean probe there settles the target), else :data:`DEFAULT_SEEDS`."""
    if asked:
        return tuple(sorted(set(asked)))
    known = int(single["max_streams"]) if single is not None and "error" not in single else 0
    if known > 0:
        return (known, math.ceil(TARGETS["workers_2"].limit * known))
    return DEFAULT_SEEDS


# -- the entries (pure) --------------------------------------------------------------------


def config_entry(
    config: Config, probes: Probes, pinned: bool, *, reused: bool = False
) -> dict[str, Any]:
    """One configuration's figure from its probes (level -> probe summary)."""
    lo, hi = bounds(probes)
    at_limit = probes.get(hi) if hi is not None else probes.get(lo)
    return {
        **_describe(config, pinned),
        "max_streams": lo,
        "first_unclean": hi,
        "probed": hi is not None,  # False: every level tried was clean, the limit unknown
        "reused": reused,  # the stall-free phase's figure, not probed again
        # The harness's own limit: straight to the stub stalled at the same level.
        "baseline_stalled": hi is not None and _baseline_unclean(probes[hi]),
        "parley_busy": (at_limit or {}).get("parley_busy"),
        "probes": [probes[level] for level in sorted(probes)],
    }


def failed_entry(config: Config, pinned: bool, error: BaseException) -> dict[str, Any]:
    return {
        **_describe(config, pinned),
        "error": f"{type(error).__name__}: {error}"[:2000],
        "max_streams": 0,
        "first_unclean": None,
        "probed": False,
        "reused": False,
        "baseline_stalled": False,
        "parley_busy": None,
        "probes": [],
    }


def _describe(config: Config, pinned: bool) -> dict[str, Any]:
    return {
        "key": config.key,
        "label": config.label,
        "processes": config.processes,
        "workers": config.workers,
        "cores": config.cores,
        "cpus": config.pinning(pinned),
    }


def _baseline_unclean(summary: dict[str, Any]) -> bool:
    return bool(summary.get("baseline_stalls")) or bool(summary.get("baseline_failed"))


def judged(entries: Sequence[dict[str, Any]], cores: int) -> list[dict[str, Any]]:
    """Each entry with its ratio to one worker and the harness's limit on it."""
    single = next((e for e in entries if e["key"] == SINGLE.key), None)
    return [{**e, "ratio": ratio(e, single), "limit": harness_limit(e, cores)} for e in entries]


def ratio(entry: dict[str, Any], single: dict[str, Any] | None) -> float | None:
    """Stall-free streams over one worker's; None without both figures."""
    if single is None or "error" in entry or "error" in single:
        return None
    base = int(single["max_streams"])
    return int(entry["max_streams"]) / base if base > 0 else None


def harness_limit(entry: dict[str, Any], cores: int) -> str:
    """Why the figure may be the harness's rather than Parley's ("" when it is Parley's)."""
    reasons = []
    if entry.get("baseline_stalled"):
        reasons.append(
            f"the baseline (straight to the stub) stalled at {entry['first_unclean']} streams too"
        )
    if cores < HARNESS_CORES and int(entry.get("cores", 1)) > 1:
        reasons.append(f"{cores} cores: the stub, load generator and Redis share Parley's cores")
    return "harness-limited: " + "; ".join(reasons) if reasons else ""
