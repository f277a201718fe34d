"""The latency ladder: every path at each concurrency level, rounds alternating."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import Profile, percentile
from bench.figures import Cell
from bench.peer import Peer
from bench.phases.harness import Harness, Route
from bench.phases.rounds import rotate, run_round, summarise_cells, warm_up
from bench.servers import Instance


@dataclass
class Ladder:
    name: str
    vendor: str  # openai | anthropic
    profile: Profile
    levels: tuple[int, ...]
    paths: list[Route]
    single_rounds: int  # rounds at 1 stream (one sample each): enough for a p99


def ladder_paths(
    vendor: str,
    instances: Sequence[Instance],
    transports: Sequence[str],
    peers: Sequence[Peer] = (),
) -> list[Route]:
    paths = [Route("baseline", vendor)]
    several = len(instances) > 1
    for instance in instances:
        suffix = f"@{instance.source.label}" if several else ""
        if vendor == "anthropic":
            paths.append(Route(f"ws{suffix}", "ws-anthropic", instance))
            continue
        paths += [Route(f"{t}{suffix}", t, instance) for t in transports]
    if vendor == "openai":
        paths += [Route(peer.label, "peer", peer=peer) for peer in peers]
    return paths


async def run_ladder(h: Harness, ladder: Ladder) -> dict[str, Any]:
    await h.set_profile(ladder.profile)
    await warm_up(h, ladder.paths, ladder.profile)
    cells: list[Cell] = []
    stopped_after: int | None = None
    for level in ladder.levels:
        row = [p.cell(level) for p in ladder.paths]
        rounds = ladder.single_rounds if level == 1 else h.settings.rounds
        started = time.monotonic()
        for turn in range(rounds):
            # every path of a turn sees the same arrival times
            offsets = h.settings.arrivals.offsets(level, seed=level * 1009 + turn)
            for path in rotate(ladder.paths, turn):
                cell = row[ladder.paths.index(path)]
                cell.add(await run_round(h, path, level, ladder.profile, offsets=offsets))
        cells += row
        print(progress(ladder, level, row, time.monotonic() - started), flush=True)
        if collapsed(row, h.settings.collapse_share):
            stopped_after = level
            print(f"  {ladder.name}: Parley failed most streams at {level}; ladder stopped")
            break
    return {
        "name": ladder.name,
        "vendor": ladder.vendor,
        "profile": {"tokens": ladder.profile.tokens, "interval_ms": ladder.profile.interval_ms},
        "levels": list(ladder.levels),
        "stopped_after": stopped_after,
        "cells": summarise_cells(cells, ladder.profile),
        "_cells": cells,  # kept for later phases, dropped from the JSON
    }


def collapsed(row: Sequence[Cell], share: float) -> bool:
    parley = [cell for cell in row if cell.parley]
    return bool(parley) and all(len(c.failed()) >= share * len(c.results) for c in parley)


def progress(ladder: Ladder, level: int, row: Sequence[Cell], seconds: float) -> str:
    parts = []
    for cell in row:
        ttft = percentile(cell.values(lambda r: r.ttft), 0.5)
        gap = percentile(cell.gaps(), 0.99)
        failed = len(cell.failed())
        parts.append(
            f"{cell.target} ttft50 {ttft:.1f} gap99 {gap:.1f}"
            + (f" FAIL {failed}" if failed else "")
        )
    return f"  {ladder.name} x{level} ({seconds:.0f}s): " + "; ".join(parts)
