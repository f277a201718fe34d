"""Time to first token at one stream, per path, from enough probes for a p99."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.common import Profile, percentile
from bench.figures import Cell
from bench.peer import Peer
from bench.phases.harness import Harness, Route
from bench.phases.rounds import rotate, run_round, summarise_cells
from bench.servers import Instance


def probe_paths(
    instances: Sequence[Instance], transports: Sequence[str], peers: Sequence[Peer]
) -> list[Route]:
    """Baseline, every Parley path (``ws-new`` beside ``ws``), and the peers."""
    kinds = [kind for t in transports for kind in ((t, "ws-new") if t == "ws" else (t,))]
    paths = [Route("baseline", "openai")]
    several = len(instances) > 1
    for instance in instances:
        suffix = f"@{instance.source.label}" if several else ""
        paths += [Route(f"{kind}{suffix}", kind, instance) for kind in kinds]
    paths += [Route(peer.label, "peer", peer=peer) for peer in peers]
    return paths


async def first_token(
    h: Harness, instances: Sequence[Instance], profile: Profile
) -> dict[str, Any]:
    """Time to first token at one stream, from enough probes per path for a p99.

    Every path gets ``probe_samples`` probes in ``probe_rounds`` rounds, the
    paths alternating from round to round; within a round one connection asks
    again and again, ``probe_pause_s`` apart, each time in a new conversation.
    The replies are short (``profile``): the first token does not depend on
    how many follow.
    """
    settings = h.settings
    await h.set_profile(profile)
    paths = probe_paths(instances, settings.transports, h.peers)
    for path in paths:  # warm every pool
        await run_round(h, path, 1, profile, repeat=3, pause_s=settings.probe_pause_s)
    repeat = math.ceil(settings.probe_samples / settings.probe_rounds)
    cells = [path.cell(1) for path in paths]
    for turn in range(settings.probe_rounds):
        for path in rotate(paths, turn):
            found = await run_round(
                h, path, 1, profile, repeat=repeat, pause_s=settings.probe_pause_s
            )
            cells[paths.index(path)].add(found)
    print(progress_line("first token", cells), flush=True)
    return {
        "profile": {"tokens": profile.tokens, "interval_ms": profile.interval_ms},
        "samples_per_path": repeat * settings.probe_rounds,
        "pause_ms": 1000 * settings.probe_pause_s,
        "cells": summarise_cells(cells, profile),
    }


def progress_line(name: str, cells: Sequence[Cell]) -> str:
    parts = []
    for cell in cells:
        ttft = cell.values(lambda r: r.ttft)
        parts.append(
            f"{cell.target} ttft50 {percentile(ttft, 0.5):.1f} ttft99 "
            f"{percentile(ttft, 0.99):.1f} (n={len(ttft)})"
        )
    return f"  {name}: " + "; ".join(parts)
