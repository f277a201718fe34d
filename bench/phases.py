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

import asyncpg

from bench.common import Profile, StreamResult, percentile, slope
from bench.figures import Cell, Round, Usage, error_samples, summarise
from bench.measure import CountingProxy, command_stats, http_json, summarise_profile
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

QUIET_CPU_SHARE = 0.15  # a server using less than this share of a core is quiet
QUIET_TIMEOUT = 30.0
DRAIN_TIMEOUT = 120.0
WARM_UP_STREAMS = 16
HARNESS_COMMANDS = ("SCARD", "INFO")  # what the harness sends to a Parley's Redis


@dataclass(frozen=True)
class Route:
    """One way of getting a reply: straight from the stub, or through a Parley instance."""

    label: str
    kind: str  # openai | anthropic (the baseline) | ws | sse | ws-anthropic
    instance: Instance | None = None

    @property
    def agent(self) -> str:
        return ANTHROPIC_AGENT if self.kind == "ws-anthropic" else OPENAI_AGENT


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
    collapse_share: float = 0.5  # stop a ladder when this share of a level's streams fail


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
    live: list[Instance] = field(default_factory=list)  # running Parley instances
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

    def cpu(self, instance: Instance | None) -> Usage:
        """CPU seconds so far of every process in the path (a snapshot, not a delta)."""
        redis = self.redis.get(instance.source.label) if instance else None
        return Usage(
            wall=time.perf_counter(),
            parley=instance.child.cpu() if instance else math.nan,
            stub=self.stub.cpu(),
            generator=self.generator.child.cpu(),
            redis=redis.cpu() if redis else math.nan,
        )

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


def window(before: Usage, after: Usage) -> Usage:
    return Usage(
        wall=after.wall - before.wall,
        parley=after.parley - before.parley,
        stub=after.stub - before.stub,
        generator=after.generator - before.generator,
        redis=after.redis - before.redis,
    )


# -- quiet and drained ----------------------------------------------------------------------


async def quiet(instance: Instance, limit_s: float = QUIET_TIMEOUT) -> None:
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


async def run_round(h: Harness, path: Route, level: int, profile: Profile) -> Round:
    instance = path.instance
    for running in h.live:  # the baseline too: nothing left over from the last round
        await quiet(running)
    prepare = {
        "op": "prepare",
        "kind": "ws" if path.kind.startswith("ws") else path.kind,
        "url": _url(h, path),
        "count": level,
        "users": h.users(f"{path.label}.{level}"),
        "agent": path.agent,
        "tokens": profile.tokens,
        "secret": JWT_SECRET,
        "deflate": h.deflate,
    }
    await h.generator.call(prepare)
    await h.stub_stats()  # reset
    before = h.cpu(instance)
    fired = await h.generator.call({"op": "fire", "timeout": stream_timeout(level, profile)})
    if instance is not None:
        await drained(instance)
    usage = window(before, h.cpu(instance))
    stub = await h.stub_stats()
    await h.generator.call({"op": "close"})
    results = [StreamResult.from_json(raw) for raw in fired["results"]]
    late = [float(value) for value in stub.get("late_ms", [])]
    users = str(prepare["users"])
    upstream = await instance.upstream_ttfts(users) if instance is not None else []
    return Round(results, usage, late, users, upstream)


def _url(h: Harness, path: Route) -> str:
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
    vendor: str, instances: Sequence[Instance], transports: Sequence[str]
) -> list[Route]:
    paths = [Route("baseline", vendor)]
    several = len(instances) > 1
    for instance in instances:
        suffix = f"@{instance.source.label}" if several else ""
        if vendor == "anthropic":
            paths.append(Route(f"ws{suffix}", "ws-anthropic", instance))
            continue
        paths += [Route(f"{t}{suffix}", t, instance) for t in transports]
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
        row = [
            Cell(level, p.label, p.kind, p.instance.source.label if p.instance else None)
            for p in ladder.paths
        ]
        rounds = ladder.single_rounds if level == 1 else h.settings.rounds
        started = time.monotonic()
        for turn in range(rounds):
            for path in rotate(ladder.paths, turn):
                cell = row[ladder.paths.index(path)]
                cell.add(await run_round(h, path, level, ladder.profile))
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


# -- stall-free streams -------------------------------------------------------------------


async def stall_free(
    h: Harness, instance: Instance, profile: Profile, known: Sequence[tuple[Cell, Cell]]
) -> dict[str, Any]:
    """The most concurrent WebSocket streams with no stall and no lost token.

    Starts from the ladder's levels (clean or not) and bisects between the
    largest clean level and the smallest unclean one.
    """
    await h.set_profile(profile)
    probes: dict[int, dict[str, Any]] = {}
    for cell, base in known:
        probes[cell.level] = probe_summary(cell, profile, base)
    path = Route("ws", "ws", instance)
    baseline = Route("baseline", "openai")
    for _ in range(6):
        lo, hi = bounds(probes)
        if hi is None or hi - lo <= max(2, lo // 10):
            break
        level = (lo + hi) // 2 if lo else max(1, hi // 2)
        cell = Cell(level, "ws", "ws", instance.source.label)
        base = Cell(level, "baseline", "openai", None)
        for turn in range(h.settings.stall_rounds):
            for which in rotate([path, baseline], turn):
                round_ = await run_round(h, which, level, profile)
                (cell if which is path else base).add(round_)
        probes[level] = probe_summary(cell, profile, base)
        print(f"  stall-free probe x{level}: {'clean' if cell.clean(profile) else 'stalled'}")
    lo, hi = bounds(probes)
    cores = 1 if h.parley_cpu is not None else (os.cpu_count() or 1)
    return {
        "source": instance.source.label,
        "interval_ms": profile.interval_ms,
        "max_streams": lo,
        "first_unclean": hi,
        "parley_cores": cores,
        "per_core": lo / cores,
        "probes": [probes[level] for level in sorted(probes)],
    }


def bounds(probes: dict[int, dict[str, Any]]) -> tuple[int, int | None]:
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
        "lag_ms": {"p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99)},
        "parley_busy": cells.usage.busy(cells.usage.parley),
    }


async def stored_rows(database_url: str, users: str) -> int:
    connection = await asyncpg.connect(database_url)
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
