"""The measurements, one function per phase; :class:`Harness` holds what they share.

Every Parley path is timed in rounds that alternate with the baseline (the same
load sent straight to the stub) so that drift of the machine falls on both.
Before a round the server must be quiet (no reply running, CPU idle); after
it, the harness waits until every reply is stored, so that the CPU measured
belongs to that round.
"""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.arrivals import Arrivals
from bench.common import Profile, StreamResult, percentile, slope
from bench.cpu import PostgresCpu, Snapshot, harness_connection, window
from bench.figures import Cell, Round, Usage, error_samples, summarise
from bench.measure import CountingProxy, command_stats, http_json, summarise_profile
from bench.peer import Peer
from bench.processes import BenchError, Child, Children, GeneratorClient
from bench.servers import (
    ANTHROPIC_AGENT,
    JWT_SECRET,
    OPENAI_AGENT,
    Instance,
    Source,
    Storage,
    start_instance,
)
from bench.stats import min_samples, spread

QUIET_CPU_SHARE = 0.15  # a server using less than this share of a core is quiet
QUIET_TIMEOUT = 30.0
DRAIN_TIMEOUT = 120.0
WARM_UP_STREAMS = 16
# What the harness sends to a Parley's Redis: the sizes of the active-reply sets
# (one EVAL of SCARDs: Parley sends EVAL only to undo a reply that never started).
HARNESS_COMMANDS = ("EVAL", "SCARD", "INFO")


Server = Instance | Peer


@dataclass(frozen=True)
class Route:
    """One way of getting a reply: straight from the stub, through a Parley instance,
    or through a peer (LiteLLM proxy)."""

    label: str
    kind: str  # openai | anthropic (the baseline) | ws | ws-new | sse | ws-anthropic | peer
    instance: Instance | None = None
    peer: Peer | None = None
    # More instances sharing ``instance``'s storage: a round's streams go to each in turn.
    others: tuple[Instance, ...] = ()

    @property
    def instances(self) -> tuple[Instance, ...]:
        return (self.instance, *self.others) if self.instance is not None else ()

    @property
    def agent(self) -> str:
        return ANTHROPIC_AGENT if self.kind == "ws-anthropic" else OPENAI_AGENT

    @property
    def server(self) -> Server | None:
        return self.instance if self.instance is not None else self.peer

    @property
    def source(self) -> str | None:
        """The label of what is measured: a source tree, a peer; None for the baseline."""
        if self.instance is not None:
            return self.instance.source.label
        return self.peer.label if self.peer is not None else None

    @property
    def protocol(self) -> str:
        """What the load generator speaks on this route."""
        return {"ws-anthropic": "ws", "peer": "openai"}.get(self.kind, self.kind)

    def cell(self, level: int) -> Cell:
        return Cell(level, self.label, self.kind, self.source)


@dataclass
class Settings:
    """The knobs the phases read (set from the command line)."""

    rounds: int
    transports: tuple[str, ...]
    stall_rounds: int
    persistence_streams: int
    persistence_rounds: int
    persistence_profile: Profile
    redis_streams: int
    idle_max: int
    idle_step: int
    soak_seconds: float
    soak_streams: int
    arrivals: Arrivals = field(default_factory=Arrivals)
    probe_samples: int = 200  # first-token probes per path
    probe_rounds: int = 5  # ... in this many rounds, the paths alternating
    probe_pause_s: float = 0.05  # between one path's probes (a user reading the reply)
    burst_streams: int = 128  # new streams arriving while as many run
    stall_probe_up: bool = True  # probe above the ladder when every level was clean
    stall_max: int = 2048  # ... up to this many streams
    collapse_share: float = 0.5  # stop a ladder when this share of a level's streams fail
    scaling_levels: tuple[int, ...] = ()  # the scaling phase's first probes (): its own


@dataclass
class Harness:
    settings: Settings
    children: Children
    generator: GeneratorClient
    stub: Child
    stub_url: str
    run_id: str
    parley_cpu: int | None
    tools_cpu: int | None
    out: pathlib.Path
    server_env: dict[str, str]
    deflate: bool = True  # WebSocket clients offer permessage-deflate, as browsers do
    redis: dict[str, Child] = field(default_factory=dict)  # source label -> redis-server
    storage: dict[str, Storage] = field(default_factory=dict)
    postgres: dict[str, PostgresCpu] = field(default_factory=dict)  # source label ->
    live: list[Instance] = field(default_factory=list)  # running Parley instances
    peer: Peer | None = None
    serial: int = 0

    def users(self, what: str) -> str:
        self.serial += 1
        return f"b{self.run_id}.{what}.{self.serial}"

    async def set_profile(self, profile: Profile) -> None:
        body = {"tokens": profile.tokens, "interval_ms": profile.interval_ms}
        await http_json(f"{self.stub_url}/bench/profile", "PUT", body)

    async def stub_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await http_json(f"{self.stub_url}/bench/stats?reset=1&samples=1")
        return stats

    async def snapshot(self, route: Route) -> Snapshot:
        """CPU seconds so far of every process in the path (a snapshot, not a delta):
        the server, and for Parley its Redis and the Postgres processes of its database."""
        label = route.instance.source.label if route.instance is not None else None
        redis = self.redis.get(label) if label else None
        postgres = self.postgres.get(label) if label else None
        backends, shared = await postgres.snapshot() if postgres else (None, {})
        return Snapshot(
            wall=time.perf_counter(),
            parley=_server_cpu(route),
            stub=self.stub.cpu(),
            generator=self.generator.child.cpu(),
            redis=redis.cpu() if redis else math.nan,
            backends=backends,
            shared=shared,
        )

    def servers(self) -> list[Server]:
        return [*self.live, *([self.peer] if self.peer is not None else [])]

    async def stop_instance(self, instance: Instance) -> None:
        await instance.stop()
        self.children.stop(instance.child)  # already stopped: just forget it
        if instance in self.live:
            self.live.remove(instance)

    async def start_instance(
        self, name: str, source: Source, redis_url: str | None = None
    ) -> Instance:
        instance = await start_instance(
            self.children,
            f"{name}-{source.label}",
            source,
            self.storage[source.label],
            stub_url=self.stub_url,
            redis_url=redis_url,
            cpu=self.parley_cpu,
            extra_env=self.server_env,
        )
        self.live.append(instance)
        return instance


def _server_cpu(route: Route) -> float:
    """The CPU seconds of the route's server(s): every instance the streams are spread on."""
    if route.instance is not None:
        return sum(instance.child.cpu() for instance in route.instances)
    return route.peer.child.cpu() if route.peer is not None else math.nan


# -- quiet and drained ----------------------------------------------------------------------


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


# -- one round --------------------------------------------------------------------------


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


# -- the latency ladder -------------------------------------------------------------------


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
    peer: Peer | None = None,
) -> list[Route]:
    paths = [Route("baseline", vendor)]
    several = len(instances) > 1
    for instance in instances:
        suffix = f"@{instance.source.label}" if several else ""
        if vendor == "anthropic":
            paths.append(Route(f"ws{suffix}", "ws-anthropic", instance))
            continue
        paths += [Route(f"{t}{suffix}", t, instance) for t in transports]
    if peer is not None and vendor == "openai":
        paths.append(Route(peer.label, "peer", peer=peer))
    return paths


async def warm_up(h: Harness, paths: Sequence[Route], profile: Profile) -> None:
    """Fill every pool (vendor connections, asyncpg, Redis) before anything is timed."""
    for path in paths:
        await run_round(h, path, WARM_UP_STREAMS, profile)


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


def summarise_cells(cells: Sequence[Cell], profile: Profile) -> list[dict[str, Any]]:
    baselines = {cell.level: cell for cell in cells if not cell.parley}
    return [summarise(cell, profile, baselines.get(cell.level)) for cell in cells]


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


# -- first token at one stream ------------------------------------------------------------


def probe_paths(
    instances: Sequence[Instance], transports: Sequence[str], peer: Peer | None
) -> list[Route]:
    """Baseline, every Parley path (``ws-new`` beside ``ws``), and the peer."""
    kinds = [kind for t in transports for kind in ((t, "ws-new") if t == "ws" else (t,))]
    paths = [Route("baseline", "openai")]
    several = len(instances) > 1
    for instance in instances:
        suffix = f"@{instance.source.label}" if several else ""
        paths += [Route(f"{kind}{suffix}", kind, instance) for kind in kinds]
    if peer is not None:
        paths.append(Route(peer.label, "peer", peer=peer))
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
    paths = probe_paths(instances, settings.transports, h.peer)
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


# -- a burst while streams run ---------------------------------------------------------------


async def burst(h: Harness, instances: Sequence[Instance], profile: Profile) -> dict[str, Any]:
    """``burst_streams`` new streams arrive at once while as many are running.

    The running streams start together; the burst comes halfway through their
    replies. Figures: stalls in the running streams, and the burst's time to
    first token (enough rounds for ``min_samples(0.99)`` of them per path).
    """
    settings = h.settings
    count = settings.burst_streams
    await h.set_profile(profile)
    paths = probe_paths(instances, [t for t in settings.transports], h.peer)
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


# -- stall-free streams -------------------------------------------------------------------


async def stall_free(
    h: Harness,
    instance: Instance,
    profile: Profile,
    known: Sequence[tuple[Cell, Cell]],
    transport: str = "ws",
) -> dict[str, Any]:
    """The most concurrent streams on ``transport`` with no stall and no lost token.

    Starts from the ladder's levels (clean or not), bisects between the largest
    clean level and the smallest unclean one, and when every level was clean
    doubles until one is not (unless ``stall_probe_up`` is off: quick mode).
    Without an unclean level the figure is a lower bound, reported as not probed.
    """
    await h.set_profile(profile)
    probes = {cell.level: probe_summary(cell, profile, base) for cell, base in known}
    await bisect(h, Route(transport, transport, instance), profile, probes)
    lo, hi = bounds(probes)
    cores = 1 if h.parley_cpu is not None else (os.cpu_count() or 1)
    return {
        "source": instance.source.label,
        "path": transport,
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


# -- persistence ----------------------------------------------------------------------------


async def persistence(h: Harness, instance: Instance) -> dict[str, Any]:
    """A burst of short replies: rows committed per second, and reply end to commit.

    Rows are the user and assistant ``messages`` rows and the ``llm_usage`` rows
    the burst stored, counted in Postgres, over the burst's wall time (first
    message sent to the last reply stored and its ``done`` appended). The lag
    is from the last token to ``done`` at the client: Parley commits the reply,
    then publishes ``done``, so this bounds reply end to commit from above.
    """
    profile = h.settings.persistence_profile
    await h.set_profile(profile)
    level = h.settings.persistence_streams
    path = Route("ws", "ws", instance)
    await run_round(h, path, min(level, WARM_UP_STREAMS), profile)
    rounds: list[dict[str, float]] = []
    cells = Cell(level, "ws", "ws", instance.source.label)
    for _ in range(h.settings.persistence_rounds):
        round_ = await run_round(h, path, level, profile)
        cells.add(round_)
        stored = await stored_rows(instance.storage.database_url, round_.users)
        rounds.append({"rows": stored, "wall_s": round_.usage.wall})
    rows = sum(r["rows"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    lags = cells.values(lambda r: r.done_lag)
    return {
        "source": instance.source.label,
        "profile": {"tokens": profile.tokens, "interval_ms": profile.interval_ms},
        "streams": level,
        "rounds": rounds,
        "replies": len(cells.results),
        "failed": len(cells.failed()),
        "errors": error_samples(cells),
        "rows": rows,
        "rows_per_s": rows / wall if wall else math.nan,
        "lag_ms": spread(lags),
        "parley_busy": cells.usage.busy(cells.usage.parley),
    }


async def stored_rows(database_url: str, users: str) -> int:
    connection = await harness_connection(database_url)
    try:
        pattern = users + ".%"
        messages = await connection.fetchval(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.owner_id LIKE $1 AND m.status <> 'streaming'",
            pattern,
        )
        usage = await connection.fetchval(
            "SELECT count(*) FROM llm_usage WHERE user_id LIKE $1", pattern
        )
    finally:
        await connection.close()
    return int(messages) + int(usage)


# -- Redis round trips ------------------------------------------------------------------------


async def redis_round_trips(h: Harness, source: Source, profile: Profile) -> dict[str, Any]:
    """A Parley instance whose Redis traffic passes a counting proxy, under WebSocket load."""
    storage = h.storage[source.label]
    proxy = await CountingProxy(storage.redis_url).start()
    instance = await h.start_instance("parley-counted", source, redis_url=proxy.url)
    try:
        await h.set_profile(profile)
        path = Route("ws", "ws", instance)
        level = h.settings.redis_streams
        await run_round(h, path, min(level, WARM_UP_STREAMS), profile)
        await quiet(instance)
        counts, commands = proxy.snapshot(), await command_stats(storage.redis_url)
        cell = Cell(level, "ws", "ws", source.label)
        for _ in range(2):
            cell.add(await run_round(h, path, level, profile))
        delta = proxy.snapshot().minus(counts)
        calls = await command_stats(storage.redis_url) - commands
        for own in HARNESS_COMMANDS:  # the harness's polling, on its own connection
            calls.pop(own, None)
    finally:
        await h.stop_instance(instance)
        await proxy.stop()
    tokens, replies = cell.tokens(), len(cell.results)
    per_token = {name: n / tokens for name, n in calls.most_common(12)} if tokens else {}
    return {
        "source": source.label,
        "streams": level,
        "replies": replies,
        "failed": len(cell.failed()),
        "tokens": tokens,
        "round_trips": delta.round_trips,
        "round_trips_per_token": delta.round_trips / tokens if tokens else math.nan,
        "round_trips_per_reply": delta.round_trips / replies if replies else math.nan,
        "commands": sum(calls.values()),
        "commands_per_token": sum(calls.values()) / tokens if tokens else math.nan,
        "commands_per_token_by_name": per_token,
        "connections_opened": delta.connections,
    }


# -- idle sockets -------------------------------------------------------------------------------


async def idle_sockets(h: Harness, source: Source) -> dict[str, Any]:
    """RSS of a fresh instance as authenticated, silent WebSockets pile up."""
    instance = await h.start_instance("parley-idle", source)
    points: list[list[float]] = [[0, await settled_rss(instance.child)]]
    errors: list[str] = []
    try:
        users = h.users("idle")
        for total in range(h.settings.idle_step, h.settings.idle_max + 1, h.settings.idle_step):
            answer = await h.generator.call(
                {
                    "op": "idle_open",
                    "url": instance.ws_url,
                    "count": total - int(points[-1][0]),
                    "users": users,
                    "secret": JWT_SECRET,
                    "deflate": h.deflate,
                }
            )
            errors += answer["error_samples"]
            points.append([answer["open"], await settled_rss(instance.child)])
            print(f"  idle sockets: {answer['open']} open, RSS {points[-1][1] / 2**20:.1f} MiB")
            if answer["errors"]:
                break
    finally:
        await h.generator.call({"op": "idle_close"})
        await h.stop_instance(instance)
    fitted = [p for p in points if p[0] >= h.settings.idle_step]
    per_socket = slope([p[0] for p in fitted], [p[1] for p in fitted])
    return {
        "source": source.label,
        "points": points,
        "kib_per_socket": per_socket / 1024,
        "errors": errors[:5],
    }


async def settled_rss(child: Child) -> float:
    """RSS once the server has gone quiet (median of three samples)."""
    await asyncio.sleep(2)
    samples = []
    for _ in range(3):
        samples.append(child.rss())
        await asyncio.sleep(0.3)
    return sorted(samples)[1]


# -- soak ----------------------------------------------------------------------------------------


async def soak(h: Harness, source: Source, profile: Profile) -> dict[str, Any]:
    """Steady WebSocket load for ``soak_seconds``: RSS slope, and RSS after the load."""
    instance = await h.start_instance("parley-soak", source)
    await h.set_profile(profile)
    streams = h.settings.soak_streams
    command = {
        "op": "soak",
        "url": instance.ws_url,
        "streams": streams,
        "agent": OPENAI_AGENT,
        "tokens": profile.tokens,
        "per_conversation": 10,
        "secret": JWT_SECRET,
        "deflate": h.deflate,
    }
    try:
        await h.generator.call({**command, "seconds": 60, "users": h.users("soak-warm")})
        await quiet(instance)
        before = await settled_rss(instance.child)
        samples: list[list[float]] = []
        started = time.monotonic()
        load = asyncio.create_task(
            h.generator.call(
                {**command, "seconds": h.settings.soak_seconds, "users": h.users("soak")}
            )
        )
        while not load.done():
            samples.append([time.monotonic() - started, instance.child.rss()])
            await asyncio.wait({load}, timeout=5)
        tally = load.result()
        await quiet(instance)
        await asyncio.sleep(30)
        after = await settled_rss(instance.child)
    finally:
        await h.stop_instance(instance)
    steady = [s for s in samples if s[0] >= 60] or samples
    growth = slope([s[0] / 60 for s in steady], [s[1] / 2**20 for s in steady])
    return {
        "source": source.label,
        "seconds": h.settings.soak_seconds,
        "streams": streams,
        "replies": tally["replies"],
        "failed": tally["failed"],
        "lost_tokens": tally["lost"],
        "errors": tally["error_samples"],
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "rss_peak_mib": max((s[1] for s in samples), default=math.nan) / 2**20,
        "growth_mib_per_min": growth,
        "after_vs_before_pct": 100 * (after - before) / before,
        "samples": samples,
    }


# -- profiles --------------------------------------------------------------------------------


async def profiled(
    h: Harness, instance: Instance, name: str, level: int, rounds: int, profile: Profile
) -> dict[str, Any]:
    """py-spy's view of the server during ``rounds`` rounds of ``level`` WebSocket streams."""
    h.out.mkdir(parents=True, exist_ok=True)
    slug = "-".join(name.replace(",", "").split())
    raw = h.out / f"profile-{slug}-{instance.source.label}.txt"
    argv = [py_spy(), "record", "--pid", str(instance.child.pid), "--rate", "250"]
    argv += ["--gil", "--format", "raw", "--output", str(raw)]  # the GIL holder: CPU work
    await h.set_profile(profile)
    spy = h.children.spawn(f"py-spy-{name}", argv, stdout=subprocess.DEVNULL)
    await asyncio.sleep(1)
    if not spy.alive():
        raise BenchError(f"py-spy did not start:\n{spy.tail()}")
    path = Route("ws", "ws", instance)
    for _ in range(rounds):
        await run_round(h, path, level, profile)
    spy.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
    await asyncio.to_thread(spy.process.wait, 30)
    h.children.stop(spy)
    summary = summarise_profile(raw)
    return {
        "source": instance.source.label,
        "scenario": name,
        "streams": level,
        "rounds": rounds,
        "raw": str(raw),
        **summary,
    }


def py_spy() -> str:
    """py-spy beside this Python (a virtualenv's bin), else on PATH."""
    beside = pathlib.Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError("--profile needs py-spy: pip install py-spy")
    return found
