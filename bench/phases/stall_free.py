"""Stall-free streams: the most concurrent streams with no stall and no lost token,
found by probing levels against the baseline and bisecting."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from bench.common import Profile
from bench.figures import Cell, error_samples
from bench.phases.harness import Harness, Route, Settings
from bench.phases.rounds import rotate, run_round


async def stall_free(
    h: Harness,
    path: Route,
    profile: Profile,
    known: Sequence[tuple[Cell, Cell]],
) -> dict[str, Any]:
    """The most concurrent streams on ``path`` (a Parley transport, or a peer) with no
    stall and no lost token.

    Starts from the ladder's levels (clean or not), bisects between the largest
    clean level and the smallest unclean one, and when every level was clean
    doubles until one is not (unless ``stall_probe_up`` is off: quick mode).
    Without an unclean level the figure is a lower bound, reported as not probed.
    """
    await h.set_profile(profile)
    probes = {cell.level: probe_summary(cell, profile, base) for cell, base in known}
    await bisect(h, path, profile, probes)
    lo, hi = bounds(probes)
    cores = 1 if h.parley_cpu is not None else (os.cpu_count() or 1)
    return {
        "source": path.source,
        "path": path.label if path.peer is not None else path.kind,
        "interval_ms": profile.interval_ms,
        "max_streams": lo,
        "first_unclean": hi,
        "probed": hi is not None,  # False: every level tried was clean, the limit unknown
        "parley_cores": cores,
        "per_core": lo / cores,
        "probes": [probes[level] for level in sorted(probes)],
    }


Probes = dict[int, dict[str, Any]]  # level -> probe_summary


async def bisect(h: Harness, path: Route, profile: Profile, probes: Probes) -> Probes:
    """Probe ``path`` at :func:`next_level` until the limit is found (or the probes run
    out); ``probes`` holds the levels known so far and gets the new ones."""
    for _ in range(10):
        level = next_level(probes, h.settings)
        if level is None:
            break
        probes[level] = await probe(h, path, level, profile)
    return probes


def next_level(probes: Probes, settings: Settings) -> int | None:
    """Between the largest clean level and the smallest unclean one; doubling when every
    level was clean (unless ``stall_probe_up`` is off); None when close enough."""
    lo, hi = bounds(probes)
    if hi is None:
        if not settings.stall_probe_up or lo >= settings.stall_max:
            return None
        return min(settings.stall_max, max(2 * lo, 1))
    if hi - lo <= max(2, lo // 10):
        return None
    return (lo + hi) // 2 if lo else max(1, hi // 2)


async def probe(h: Harness, path: Route, level: int, profile: Profile) -> dict[str, Any]:
    """``stall_rounds`` rounds of ``level`` streams on ``path`` and on the baseline."""
    baseline = Route("baseline", "openai")
    cell, base = path.cell(level), baseline.cell(level)
    for turn in range(h.settings.stall_rounds):
        offsets = h.settings.arrivals.offsets(level, seed=level * 1009 + turn)
        for which in rotate([path, baseline], turn):
            round_ = await run_round(h, which, level, profile, offsets=offsets)
            (cell if which is path else base).add(round_)
    print(f"  stall-free probe {path.label} x{level}: {verdict(cell, profile)}", flush=True)
    return probe_summary(cell, profile, base)


def verdict(cell: Cell, profile: Profile) -> str:
    return "clean" if cell.clean(profile) else "stalled"


def bounds(probes: Probes) -> tuple[int, int | None]:
    clean = [level for level, p in probes.items() if p["clean"]]
    lo = max(clean, default=0)
    unclean = [level for level, p in probes.items() if not p["clean"] and level > lo]
    return lo, min(unclean, default=None)


def probe_summary(cell: Cell, profile: Profile, baseline: Cell | None) -> dict[str, Any]:
    return {
        "level": cell.level,
        "clean": cell.clean(profile),
        "streams": len(cell.results),
        "stalls": cell.stalls(profile),
        "max_gap_ms": max(cell.gaps(), default=math.nan),
        "failed": len(cell.failed()),
        "lost_tokens": sum(r.lost for r in cell.results),
        "errors": error_samples(cell),
        "baseline_max_gap_ms": max(baseline.gaps(), default=math.nan) if baseline else None,
        "baseline_stalls": baseline.stalls(profile) if baseline else None,
        "baseline_failed": len(baseline.failed()) if baseline else None,
        "parley_busy": cell.usage.busy(cell.usage.parley),  # 1.0: one core's worth
    }
