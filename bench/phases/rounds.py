"""One round: ``level`` streams on one path, timed, with the CPU of the whole round.

Every Parley path is timed in rounds that alternate with the baseline (the same
load sent straight to the stub) so that drift of the machine falls on both.
Before a round the server must be quiet (no reply running, CPU idle); after
it, the harness waits until every reply is stored, so that the CPU measured
belongs to that round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bench.common import Profile, StreamResult
from bench.cpu import window
from bench.figures import Cell, Round, summarise
from bench.phases.harness import Harness, Route, Server
from bench.servers import JWT_SECRET, Instance

QUIET_CPU_SHARE = 0.15  # a server using less than this share of a core is quiet
QUIET_TIMEOUT = 30.0
DRAIN_TIMEOUT = 120.0
WARM_UP_STREAMS = 16


async def quiet(instance: Server, limit_s: float = QUIET_TIMEOUT) -> None:
    """Wait until no reply runs and the server's CPU is (nearly) idle."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and instance.child.alive():
        if await instance.active_replies() == 0:
            before, started = instance.child.cpu(), time.perf_counter()
            await asyncio.sleep(0.05)
            used = instance.child.cpu() - before
            if used / (time.perf_counter() - started) < QUIET_CPU_SHARE:
                return
        else:
            await asyncio.sleep(0.05)


async def drained(instance: Instance, limit_s: float = DRAIN_TIMEOUT) -> bool:
    """Wait until every reply has been stored (``done`` appended); ``False`` on timeout."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and instance.child.alive():
        if await instance.active_replies() == 0:
            return True
        await asyncio.sleep(0.02)
    return False


def stream_timeout(level: int, profile: Profile) -> float:
    """Generous: the stub's own pacing, plus Parley saturated at a few hundred tokens/s."""
    return 30 + profile.tokens * profile.interval_ms / 1000 + level * profile.tokens / 300


async def run_round(
    h: Harness,
    path: Route,
    level: int,
    profile: Profile,
    *,
    offsets: Sequence[float] | None = None,
    repeat: int = 1,
    pause_s: float = 0.0,
) -> Round:
    """``level`` streams on ``path``, each starting at its offset (none: all at once),
    each asking ``repeat`` times; the CPU is that of the whole round."""
    instance = path.instance
    for running in h.servers():  # the baseline too: nothing left over from the last round
        await quiet(running)
    prepare = {
        "op": "prepare",
        "kind": path.protocol,
        "api_key": path.peer.api_key if path.peer is not None else None,
        "url": _url(h, path),
        "urls": [_url(h, Route(path.label, path.kind, one)) for one in path.instances],
        "count": level,
        "users": h.users(f"{path.label}.{level}"),
        "agent": path.agent,
        "tokens": profile.tokens,
        "secret": JWT_SECRET,
        "deflate": h.deflate,
    }
    await h.generator.call(prepare)
    await h.stub_stats()  # reset
    before = await h.snapshot(path)
    fire = {"op": "fire", "timeout": stream_timeout(level, profile), "repeat": repeat}
    fire |= {"offsets": list(offsets or []), "pause_s": pause_s}
    fired = await h.generator.call(fire)
    if instance is not None:
        await drained(instance)
    usage = window(before, await h.snapshot(path))
    stub = await h.stub_stats()
    await h.generator.call({"op": "close"})
    results = [StreamResult.from_json(raw) for raw in fired["results"]]
    late = [float(value) for value in stub.get("late_ms", [])]
    users = str(prepare["users"])
    upstream = await instance.upstream_ttfts(users) if instance is not None else []
    return Round(results, usage, late, users, upstream)


def _url(h: Harness, path: Route) -> str:
    if path.peer is not None:
        return path.peer.url
    if path.instance is None:
        return h.stub_url
    return path.instance.ws_url if path.kind.startswith("ws") else path.instance.url


def rotate(paths: Sequence[Route], turn: int) -> list[Route]:
    """Round ``turn``'s order: each path takes each position in turn."""
    shift = turn % len(paths)
    return [*paths[shift:], *paths[:shift]]


async def warm_up(h: Harness, paths: Sequence[Route], profile: Profile) -> None:
    """Fill every pool (vendor connections, asyncpg, Redis) before anything is timed."""
    for path in paths:
        await run_round(h, path, WARM_UP_STREAMS, profile)


def summarise_cells(cells: Sequence[Cell], profile: Profile) -> list[dict[str, Any]]:
    """Each cell's figures, Parley's against the baseline cell of the same level (whose
    rounds alternated with theirs)."""
    baselines = {cell.level: cell for cell in cells if not cell.parley}
    return [summarise(cell, profile, baselines.get(cell.level)) for cell in cells]
