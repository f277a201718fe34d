"""A burst of new streams arriving while as many run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench.common import Profile
from bench.figures import Round, Usage
from bench.phases.first_token import probe_paths, progress_line
from bench.phases.harness import Harness
from bench.phases.rounds import rotate, run_round, summarise_cells
from bench.servers import Instance
from bench.stats import min_samples


async def burst(h: Harness, instances: Sequence[Instance], profile: Profile) -> dict[str, Any]:
    """``burst_streams`` new streams arrive at once while as many are running.

    The running streams start together; the burst comes halfway through their
    replies. Figures: stalls in the running streams, and the burst's time to
    first token (enough rounds for ``min_samples(0.99)`` of them per path).
    """
    settings = h.settings
    count = settings.burst_streams
    await h.set_profile(profile)
    paths = probe_paths(instances, settings.transports, h.peers)
    paths = [path for path in paths if path.kind != "ws-new"]
    at = profile.tokens * profile.interval_ms / 2000
    offsets = [0.0] * count + [at] * count
    rounds = max(2, math.ceil(min_samples(0.99) / count))
    running = [path.cell(count) for path in paths]
    arriving = [path.cell(count) for path in paths]
    for turn in range(rounds):
        for path in rotate(paths, turn):
            found = await run_round(h, path, 2 * count, profile, offsets=offsets)
            index = paths.index(path)
            first, second = split_round(found, count)
            running[index].add(first)
            arriving[index].add(second)
    print(progress_line(f"burst of {count}", arriving), flush=True)
    return {
        "streams": count,
        "at_ms": 1000 * at,
        "rounds": rounds,
        "profile": {"tokens": profile.tokens, "interval_ms": profile.interval_ms},
        "running": summarise_cells(running, profile),
        "burst": summarise_cells(arriving, profile),
    }


def split_round(found: Round, count: int) -> tuple[Round, Round]:
    """The running streams' round and the burst's; the CPU stays with the first."""
    first = Round(found.results[:count], found.usage, found.stub_late, found.users)
    second = Round(found.results[count:], Usage(), [], found.users, found.upstream_ttft)
    return first, second
