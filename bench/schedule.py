"""Which phases run, in what order, on which instances; a phase that fails is recorded
in the results and the run goes on."""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from bench import collector
from bench.common import Profile
from bench.figures import Cell
from bench.options import Options, profiles
from bench.peer import Peer, cache_folder, start_peer
from bench.phases import scaling
from bench.phases.burst import burst
from bench.phases.first_token import first_token
from bench.phases.harness import Harness, Route
from bench.phases.ladder import Ladder, ladder_paths, run_ladder
from bench.phases.memory import idle_sockets, soak
from bench.phases.profiling import profiled
from bench.phases.stall_free import stall_free
from bench.phases.storage import persistence, redis_round_trips
from bench.servers import Instance, Source

Phase = Callable[[], Awaitable[Any]]


async def attempt(results: dict[str, Any], name: str, phase: Phase) -> Any:
    """Run one phase; a failure is recorded in the results and the run goes on."""
    started = time.monotonic()
    print(f"== {name}", flush=True)
    try:
        value = await phase()
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as error:
        detail = "".join(traceback.format_exception_only(error)).strip()
        print(f"!! {name} failed: {detail}", file=sys.stderr, flush=True)
        results.setdefault("failures", []).append({"phase": name, "error": detail[:2000]})
        return None
    print(f"   {name}: {time.monotonic() - started:.0f} s", flush=True)
    return value


def ladders(
    options: Options, instances: Sequence[Instance], peers: Sequence[Peer] = ()
) -> list[Ladder]:
    paced, fast = profiles(options)
    wanted = [
        ("openai", paced, options.levels, options.single),
        ("openai", fast, options.fast_levels, options.fast_single),
        ("anthropic", paced, options.anthropic_levels, max(1, options.single // 2)),
    ]
    return [
        Ladder(
            f"{vendor}-{profile.name}",
            vendor,
            profile,
            levels,
            ladder_paths(vendor, instances, options.transports, peers),
            single,
        )
        for vendor, profile, levels, single in wanted
        if levels
    ]


async def with_peers(options: Options, h: Harness, results: dict[str, Any]) -> None:
    """Start the peers asked for; a peer that fails is reported, and the run goes on."""
    cache = cache_folder(options.peer_cache)
    for name in options.peers:
        storage = h.peer_storage.get(name)
        start = partial(start_peer, name, h.children, cache, h.stub_url, h.parley_cpu, storage)
        peer = await attempt(results, f"peer {name}", start)
        report: dict[str, Any] = {"name": name, "started": peer is not None}
        report |= {"cache": str(cache)} if name == "litellm" else {}
        if peer is None:
            report["error"] = results["failures"][-1]["error"]
        else:
            h.peers.append(peer)
        results.setdefault("peers", []).append(report)


Known = dict[str, dict[str, list[tuple[Cell, Cell]]]]  # source -> transport -> cells


async def measure(options: Options, h: Harness, sources: Sequence[Source]) -> dict[str, Any]:
    """Every phase: first those on one instance per tree (the peer beside them while it
    runs), then those that start their own."""
    results: dict[str, Any] = {"ladders": []}
    instances = [await h.start_instance("parley", source) for source in sources]
    at_start = [await collector.read(instance.url) for instance in instances]
    await with_peers(options, h, results)
    known = await latency_phases(options, h, instances, results)
    for peer in h.peers:
        await peer.stop()
    h.peers.clear()
    for instance in instances:
        await instance_phases(options, h, instance, known[instance.source.label], results)
    for instance, before in zip(instances, at_start, strict=True):
        pauses = collector.pauses(before, await collector.read(instance.url))
        _append(results, "collector", {"source": instance.source.label, "generations": pauses})
        await h.stop_instance(instance)
    for source in sources:
        await fresh_instance_phases(options, h, source, results)
    return results


async def latency_phases(
    options: Options, h: Harness, instances: Sequence[Instance], results: dict[str, Any]
) -> Known:
    """First token, the ladders and the burst, on every instance (and the peer); returns
    the paced ladder's cells, where the stall-free phase starts from."""
    paced, _ = profiles(options)
    if "ttft" not in options.skip:
        probe = Profile(options.probe_tokens, options.fast_interval_ms)
        ttft = partial(first_token, h, instances, probe)
        _put(results, "first_token", await attempt(results, "first token", ttft))
    known: Known = {i.source.label: {t: [] for t in options.transports} for i in instances}
    known |= {peer.label: {"peer": []} for peer in h.peers}
    if "ladder" not in options.skip:
        for ladder in ladders(options, instances, h.peers):
            done = await attempt(results, f"ladder {ladder.name}", partial(run_ladder, h, ladder))
            if done is None:
                continue
            cells = done.pop("_cells")
            results["ladders"].append(done)
            if ladder.vendor == "openai" and ladder.profile == paced:
                collect_known(cells, known)
    if "burst" not in options.skip:
        bursts = partial(burst, h, instances, paced)
        _put(results, "burst", await attempt(results, "burst", bursts))
    for peer in h.peers if "stall" not in options.skip else ():
        path = Route(peer.label, "peer", peer=peer)
        stall = partial(stall_free, h, path, paced, known[peer.label]["peer"])
        _append(results, "stall_free", await attempt(results, f"stall-free {peer.label}", stall))
    return known


async def instance_phases(
    options: Options,
    h: Harness,
    instance: Instance,
    known: dict[str, list[tuple[Cell, Cell]]],
    results: dict[str, Any],
) -> None:
    """Stall-free streams per transport, persistence and the profiles, on ``instance``."""
    paced, _ = profiles(options)
    label = instance.source.label
    for transport in options.transports if "stall" not in options.skip else ():
        path = Route(transport, transport, instance)
        stall = partial(stall_free, h, path, paced, known[transport])
        name = f"stall-free {label} {transport}"
        _append(results, "stall_free", await attempt(results, name, stall))
    if "persistence" not in options.skip:
        stored = partial(persistence, h, instance)
        _append(results, "persistence", await attempt(results, f"persistence {label}", stored))
    if options.profile:
        for found in await profile_runs(options, h, instance, results):
            _append(results, "profiles", found)


async def fresh_instance_phases(
    options: Options, h: Harness, source: Source, results: dict[str, Any]
) -> None:
    """The phases that start their own instance of ``source``."""
    paced, _ = profiles(options)
    label = source.label
    if options.scaling:
        single = _for_path(results.get("stall_free", []), label, scaling.TRANSPORT)
        across = partial(scaling.scaling, h, source, paced, single)
        _append(results, "scaling", await attempt(results, f"scaling {label}", across))
    if "idle" not in options.skip:
        idle = partial(idle_sockets, h, source)
        _append(results, "idle", await attempt(results, f"idle {label}", idle))
    if "redis" not in options.skip:
        counted = partial(redis_round_trips, h, source, paced)
        _append(results, "redis", await attempt(results, f"redis {label}", counted))
    if options.soak > 0:
        steady = partial(soak, h, source, paced)
        _append(results, "soak", await attempt(results, f"soak {label}", steady))


def collect_known(cells: Sequence[Cell], into: Known) -> None:
    """The paced ladder's Parley cells per transport, each with its level's baseline."""
    baselines = {cell.level: cell for cell in cells if not cell.parley}
    for cell in cells:
        known = into.get(cell.source or "", {})
        if cell.kind in known and cell.level in baselines:
            known[cell.kind].append((cell, baselines[cell.level]))


async def profile_runs(
    options: Options, h: Harness, instance: Instance, results: dict[str, Any]
) -> list[dict[str, Any]]:
    paced, fast = profiles(options)
    runs = [
        ("1 stream, 5 ms", 1, 40, fast),
        ("32 streams, 20 ms", 32, 3, paced),
        ("128 streams, 20 ms", 128, 2, paced),
    ]
    found = []
    for name, level, rounds, profile in runs:
        run = partial(profiled, h, instance, name, level, rounds, profile)
        entry = await attempt(results, f"profile {name}", run)
        if entry is not None:
            found.append(entry)
    return found


def _for_path(entries: Sequence[dict[str, Any]], source: str, path: str) -> dict[str, Any] | None:
    return next((e for e in entries if e["source"] == source and e.get("path") == path), None)


def _put(results: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        results[key] = value


def _append(results: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        results.setdefault(key, []).append(value)
