"""The one command: ``python -m bench`` (``--quick`` for a 1-2 minute run, ``--help``).

It starts a stub upstream, a load generator, a private redis-server and a
scratch Postgres database per Parley source tree, and one ``parley serve`` per
tree, then runs the phases (see docs/performance.md):

1. first token at one stream: at least 200 probes per path (baseline,
   WebSocket, WebSocket with ``start`` timed, SSE, the peer), short replies;
2. latency ladders (OpenAI stub at 20 ms and 5 ms, Anthropic stub at 20 ms):
   baseline, WebSocket, SSE (and the peer) rounds alternating at each level,
   the streams of a round arriving at once or as a Poisson process;
3. a burst of new streams while as many run: stalls, and the burst's first token;
4. stall-free streams at 50 tokens/s per path (bisecting between the ladder's
   levels, and above them when all were clean; quick mode does not go above);
5. persistence: a burst of short replies, rows per second and commit lag;
6. optional py-spy profiles (``--profile``);
7. scaling across cores: stall-free streams of ``--workers 2`` and of two
   instances sharing storage against one worker's (fresh instances; full runs
   only unless ``--scaling``; see bench/scaling.py);
8. memory per idle authenticated WebSocket (fresh instance);
9. Redis round trips per token (fresh instance behind a counting proxy);
10. optional soak (``--soak SECONDS``).

``--peer litellm`` adds LiteLLM proxy (its own virtualenv, no database) to the
first-token, ladder and burst phases, measured through the same client.

It prints the Markdown, writes ``bench.json``, ``bench.md`` and ``bench.png``
to ``--out`` and with ``--publish`` updates docs/performance.md. Every process,
database and Redis it started is gone when it exits, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import collector, phases, scaling
from bench.arrivals import MODES, Arrivals
from bench.common import Profile
from bench.cpu import PostgresCpu
from bench.figures import Cell
from bench.peer import PEERS, Peer, cache_folder, start_peer
from bench.processes import (
    REPO,
    BenchError,
    Children,
    GeneratorClient,
    free_port,
    raise_file_limit,
    wait_until,
)
from bench.report.files import publish, write
from bench.report.judge import evaluate
from bench.report.page import markdown
from bench.servers import Instance, Source, Storage, catalog_copy, check_import, scratch_database
from bench.stats import min_samples

PHASES = ("ttft", "ladder", "burst", "stall", "persistence", "scaling", "idle", "redis")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Options:
    quick: bool
    tokens: int
    interval_ms: float
    fast_interval_ms: float
    levels: tuple[int, ...]
    fast_levels: tuple[int, ...]
    anthropic_levels: tuple[int, ...]
    rounds: int
    single: int
    fast_single: int
    transports: tuple[str, ...]
    sources: tuple[Path, ...]
    postgres_url: str
    out: Path
    publish: bool
    soak: float
    soak_streams: int
    idle_sockets: int
    idle_step: int
    persistence_streams: int
    redis_streams: int
    profile: bool
    pin: bool
    logs: Path | None
    skip: frozenset[str]
    from_json: Path | None
    server_env: tuple[tuple[str, str], ...]
    deflate: bool
    argv: tuple[str, ...]
    arrivals: Arrivals = field(default_factory=Arrivals)
    peer: str | None = None
    peer_cache: Path | None = None
    samples: int = 200
    probe_tokens: int = 8
    burst_streams: int = 128
    scaling: bool = False  # run the scaling phase
    scaling_levels: tuple[int, ...] = ()


def parse_options(argv: Sequence[str] | None = None) -> Options:
    args = _parser().parse_args(argv)
    quick = args.quick

    def pick(value: Any, full: Any, fast: Any) -> Any:
        return value if value is not None else (fast if quick else full)

    unknown = set(args.skip) - set(PHASES)
    if unknown or set(args.transports) - {"ws", "sse"}:
        raise SystemExit(f"--skip: choose from {', '.join(PHASES)}; --transports: ws,sse")
    try:
        arrivals = Arrivals(args.arrivals, args.rate or 0.0)
    except ValueError as error:
        raise SystemExit(f"--arrivals: {error}") from None
    return Options(
        quick=quick,
        tokens=args.tokens,
        interval_ms=args.interval_ms,
        fast_interval_ms=args.fast_interval_ms,
        levels=pick(args.levels, (1, 8, 32, 128, 200, 256, 512), (1, 8, 32)),
        fast_levels=pick(args.fast_levels, (1, 8, 32, 128), (1, 8, 32)),
        anthropic_levels=pick(args.anthropic_levels, (1, 8, 32), (1,)),
        rounds=pick(args.rounds, 3, 2),
        single=pick(args.single, 30, 5),
        fast_single=pick(args.fast_single, 100, 20),
        transports=args.transports,
        sources=tuple(args.server_src or [REPO]),
        postgres_url=args.postgres_url,
        out=args.out,
        publish=args.publish,
        soak=args.soak,
        soak_streams=args.soak_streams,
        idle_sockets=pick(args.idle_sockets, 5000, 1000),
        idle_step=pick(args.idle_step, 1000, 250),
        persistence_streams=pick(args.persistence_streams, 256, 32),
        redis_streams=pick(args.redis_streams, 32, 8),
        profile=args.profile,
        pin=not args.no_pin and (os.cpu_count() or 1) >= 2,
        logs=args.logs,
        skip=frozenset(args.skip),
        from_json=args.from_json,
        server_env=tuple(_assignment(raw) for raw in args.server_env),
        deflate=not args.no_ws_deflate,
        argv=tuple(sys.argv[1:] if argv is None else argv),
        arrivals=arrivals,
        peer=args.peer,
        peer_cache=args.peer_cache,
        samples=max(args.samples, 1),
        probe_tokens=args.probe_tokens,
        burst_streams=pick(args.burst, 128, 32),
        # Several minutes of fresh instances: in quick runs only when asked for.
        scaling="scaling" not in args.skip and (args.scaling or not quick),
        scaling_levels=args.scaling_levels or (),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Parley's benchmark harness: what Parley adds over streaming straight "
        "from the vendor, and the targets of docs/performance.md.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="ladder 1,8,32 and smaller phases (1-2 minutes)")
    add("--tokens", type=int, default=64, help="tokens per reply (default 64)")
    add("--interval-ms", type=float, default=20.0, help="the paced profile (default 20)")
    add("--fast-interval-ms", type=float, default=5.0, help="the fast profile (default 5)")
    add("--levels", type=_ints, help="concurrency ladder at 20 ms (1,8,32,128,200,256,512)")
    add("--fast-levels", type=_ints, help="ladder at 5 ms (default 1,8,32,128; '' skips)")
    add("--anthropic-levels", type=_ints, help="Anthropic ladder at 20 ms (1,8,32; quick 1)")
    add("--rounds", type=int, help="rounds per level above 1 stream (default 3, quick 2)")
    add("--single", type=int, help="rounds at 1 stream, 20 ms (default 30, quick 5)")
    add("--fast-single", type=int, help="rounds at 1 stream, 5 ms (default 100, quick 20)")
    add("--transports", type=_words, default=("ws", "sse"), help="ws,sse (default both)")
    add(
        "--arrivals",
        choices=MODES,
        default="burst",
        help="how a round's streams start: all at once (burst, default) or poisson (--rate)",
    )
    add("--rate", type=float, help="poisson arrivals: streams per second on average")
    add(
        "--samples",
        type=int,
        default=min_samples(0.99),
        help="first-token probes per path at 1 stream (default 200: the fewest for a p99)",
    )
    add("--probe-tokens", type=int, default=8, help="tokens per first-token probe (default 8)")
    add("--burst", type=int, help="new streams in the burst while as many run (128, quick 32)")
    add("--peer", choices=PEERS, help="measure a peer in the same run (litellm)")
    add("--peer-cache", type=Path, help="where peers' virtualenvs go (~/.cache/parley-bench)")
    add("--server-src", type=Path, action="append", help="a Parley source tree (repeatable)")
    add("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    add("--out", type=Path, default=REPO / "bench" / "results", help="where results go")
    add("--publish", action="store_true", help="update docs/performance.md and its plot")
    add("--soak", type=float, default=0.0, metavar="SECONDS", help="run the soak (e.g. 600)")
    add("--soak-streams", type=int, default=16)
    add("--idle-sockets", type=int, help="idle WebSockets to open (default 5000, quick 1000)")
    add("--idle-step", type=int, help="sockets per RSS sample (default 1000, quick 250)")
    add("--persistence-streams", type=int, help="replies in the burst (default 256, quick 32)")
    add("--redis-streams", type=int, help="streams while counting Redis (default 32)")
    add("--profile", action="store_true", help="record py-spy profiles of the server")
    add("--no-pin", action="store_true", help="do not pin processes to cores")
    add("--no-ws-deflate", action="store_true", help="clients do not offer permessage-deflate")
    add("--logs", type=Path, help="keep every process's log in this folder")
    add(
        "--scaling",
        action="store_true",
        help="run the scaling phase (--workers 2 and two instances vs one worker) in --quick "
        "too; full runs include it unless --skip scaling",
    )
    add(
        "--scaling-levels",
        type=_ints,
        help="levels the scaling phase probes first per configuration, then bisects "
        "(default: one worker's stall-free streams and 1.8x that; 32,64 without them)",
    )
    add(
        "--skip",
        type=_words,
        default=(),
        help=f"phases to skip: {','.join(PHASES)} (--quick skips scaling unless --scaling)",
    )
    add("--from-json", type=Path, help="measure nothing: report (and --publish) a saved run")
    add(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every Parley (repeatable; PYTHONPATH is prepended)",
    )
    return parser


def _assignment(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition("=")
    if not sep or not name:
        raise SystemExit(f"--server-env: expected NAME=VALUE, got {raw!r}")
    return name, value


def _words(raw: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in raw.split(",") if word.strip())


def _ints(raw: str) -> tuple[int, ...]:
    return tuple(int(word) for word in _words(raw))


# -- set-up ------------------------------------------------------------------------------


def tiktoken_cache() -> None:
    """Parley counts tokens with tiktoken; reuse a shared cache when there is one."""
    shared = REPO.parent / "shared" / "tiktoken-cache"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and shared.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(shared)


@contextlib.contextmanager
def logs_folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as folder:
        yield Path(folder)


@contextlib.asynccontextmanager
async def tools(options: Options, logs: Path) -> AsyncIterator[tuple[Children, int | None]]:
    """The process set; everything in it is stopped however the block ends."""
    children = Children(logs, options.pin)
    tools_cpu = 1 if options.pin else None
    if tools_cpu is not None:
        os.sched_setaffinity(0, {tools_cpu})  # the harness shares the tools' core
    try:
        yield children, tools_cpu
    finally:
        children.stop_all()


async def start_stub(children: Children, cpu: int | None, profile: Profile) -> tuple[Any, str]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.stub", "--port", str(port)]
    argv += ["--tokens", str(profile.tokens), "--interval-ms", str(profile.interval_ms)]
    child = children.spawn("stub", argv, cpu=cpu)
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        from bench.processes import http_status

        return await http_status(f"{url}/health") == 200

    await wait_until(child, ready)
    return child, url


@dataclass
class Stores:
    """Per source tree: its scratch database and Redis, and who reads their CPU."""

    storage: dict[str, Storage]
    redis: dict[str, Any]
    postgres: dict[str, PostgresCpu]


@contextlib.asynccontextmanager
async def storages(
    options: Options, sources: Sequence[Source], children: Children, cpu: int | None
) -> AsyncIterator[Stores]:
    """A scratch database, a private Redis and a catalog copy per source tree."""
    from bench.processes import start_redis

    async with contextlib.AsyncExitStack() as stack:
        stores = Stores({}, {}, {})
        for source in sources:
            database = await stack.enter_async_context(scratch_database(options.postgres_url))
            child, url = await start_redis(children, f"redis-{source.label}", cpu)
            catalog = catalog_copy(source, children.logs / f"catalog-{source.label}")
            stores.storage[source.label] = Storage(database, url, catalog)
            stores.redis[source.label] = child
            counter = PostgresCpu(database)
            stack.push_async_callback(counter.close)  # before its database is dropped
            stores.postgres[source.label] = counter
        yield stores


# -- the run -------------------------------------------------------------------------------


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


def profiles(options: Options) -> tuple[Profile, Profile]:
    return Profile(options.tokens, options.interval_ms), Profile(
        options.tokens, options.fast_interval_ms
    )


def ladders(
    options: Options, instances: Sequence[Instance], peer: Peer | None = None
) -> list[phases.Ladder]:
    paced, fast = profiles(options)
    wanted = [
        ("openai", paced, options.levels, options.single),
        ("openai", fast, options.fast_levels, options.fast_single),
        ("anthropic", paced, options.anthropic_levels, max(1, options.single // 2)),
    ]
    return [
        phases.Ladder(
            f"{vendor}-{profile.name}",
            vendor,
            profile,
            levels,
            phases.ladder_paths(vendor, instances, options.transports, peer),
            single,
        )
        for vendor, profile, levels, single in wanted
        if levels
    ]


async def with_peer(options: Options, h: phases.Harness, results: dict[str, Any]) -> None:
    """Start the peer if asked; a peer that fails is reported, and the run goes on."""
    if options.peer is None:
        return
    cache = cache_folder(options.peer_cache)
    start = partial(start_peer, options.peer, h.children, cache, h.stub_url, h.parley_cpu)
    h.peer = await attempt(results, f"peer {options.peer}", start)
    results["peer"] = {"name": options.peer, "cache": str(cache), "started": h.peer is not None}
    if h.peer is None:
        results["peer"]["error"] = results["failures"][-1]["error"]


async def measure(options: Options, h: phases.Harness, sources: Sequence[Source]) -> dict[str, Any]:
    results: dict[str, Any] = {"ladders": []}
    paced, _ = profiles(options)
    instances = [await h.start_instance("parley", source) for source in sources]
    at_start = [await collector.read(instance.url) for instance in instances]
    await with_peer(options, h, results)
    if "ttft" not in options.skip:
        probe = Profile(options.probe_tokens, options.fast_interval_ms)
        ttft = partial(phases.first_token, h, instances, probe)
        _put(results, "first_token", await attempt(results, "first token", ttft))
    ws_cells: dict[str, dict[str, list[tuple[Cell, Cell]]]] = {
        s.label: {t: [] for t in options.transports} for s in sources
    }
    if "ladder" not in options.skip:
        for ladder in ladders(options, instances, h.peer):
            done = await attempt(
                results, f"ladder {ladder.name}", partial(phases.run_ladder, h, ladder)
            )
            if done is None:
                continue
            cells = done.pop("_cells")
            results["ladders"].append(done)
            if ladder.vendor == "openai" and ladder.profile == paced:
                collect_known(cells, ws_cells)
    if "burst" not in options.skip:
        bursts = partial(phases.burst, h, instances, paced)
        _put(results, "burst", await attempt(results, "burst", bursts))
    if h.peer is not None:
        await h.peer.stop()
        h.peer = None
    for instance in instances:
        label = instance.source.label
        for transport in options.transports if "stall" not in options.skip else ():
            known = ws_cells[label][transport]
            stall = partial(phases.stall_free, h, instance, paced, known, transport)
            name = f"stall-free {label} {transport}"
            _append(results, "stall_free", await attempt(results, name, stall))
        if "persistence" not in options.skip:
            burst = partial(phases.persistence, h, instance)
            _append(results, "persistence", await attempt(results, f"persistence {label}", burst))
        if options.profile:
            for found in await profile_runs(options, h, instance, results):
                _append(results, "profiles", found)
    for instance, before in zip(instances, at_start, strict=True):
        pauses = collector.pauses(before, await collector.read(instance.url))
        _append(results, "collector", {"source": instance.source.label, "generations": pauses})
        await h.stop_instance(instance)
    for source in sources:
        await fresh_instance_phases(options, h, source, results)
    return results


async def fresh_instance_phases(
    options: Options, h: phases.Harness, source: Source, results: dict[str, Any]
) -> None:
    """The phases that start their own instance of ``source``."""
    paced, _ = profiles(options)
    label = source.label
    if options.scaling:
        single = _for_path(results.get("stall_free", []), label, scaling.TRANSPORT)
        across = partial(scaling.scaling, h, source, paced, single)
        _append(results, "scaling", await attempt(results, f"scaling {label}", across))
    if "idle" not in options.skip:
        idle = partial(phases.idle_sockets, h, source)
        _append(results, "idle", await attempt(results, f"idle {label}", idle))
    if "redis" not in options.skip:
        counted = partial(phases.redis_round_trips, h, source, paced)
        _append(results, "redis", await attempt(results, f"redis {label}", counted))
    if options.soak > 0:
        soak = partial(phases.soak, h, source, paced)
        _append(results, "soak", await attempt(results, f"soak {label}", soak))


def collect_known(
    cells: Sequence[Cell], into: dict[str, dict[str, list[tuple[Cell, Cell]]]]
) -> None:
    """The paced ladder's Parley cells per transport, each with its level's baseline."""
    baselines = {cell.level: cell for cell in cells if not cell.parley}
    for cell in cells:
        known = into.get(cell.source or "", {})
        if cell.kind in known and cell.level in baselines:
            known[cell.kind].append((cell, baselines[cell.level]))


async def profile_runs(
    options: Options, h: phases.Harness, instance: Instance, results: dict[str, Any]
) -> list[dict[str, Any]]:
    paced, fast = profiles(options)
    runs = [
        ("1 stream, 5 ms", 1, 40, fast),
        ("32 streams, 20 ms", 32, 3, paced),
        ("128 streams, 20 ms", 128, 2, paced),
    ]
    found = []
    for name, level, rounds, profile in runs:
        run = partial(phases.profiled, h, instance, name, level, rounds, profile)
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


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} x {model}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average {load} at the start"
    )


async def main_async(options: Options) -> int:
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    raise_file_limit()
    tiktoken_cache()
    sources = [Source.at(path, None) for path in options.sources]
    if len({s.label for s in sources}) < len(sources):
        sources = [Source.at(s.root, f"{s.label}-{i}") for i, s in enumerate(sources)]
    for source in sources:
        check_import(source)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", "-m", "bench", *options.argv]),
        "commit": sources[0].commit,
        "sources": [
            {"label": s.label, "commit": s.commit, "dirty": s.dirty, "describe": s.describe()}
            for s in sources
        ],
        "machine": machine(),
        "ws_deflate": options.deflate,
        "arrivals": options.arrivals.describe(),
        "pinning": "Parley on CPU 0; stub, load generator, Redis and harness on CPU 1; "
        "Postgres (shared) unpinned"
        + ("; the scaling phase's second Parley core is CPU 1" if options.scaling else "")
        if options.pin
        else "none",
    }
    print(f"machine: {meta['machine']}", flush=True)
    with logs_folder(options.logs) as logs:
        async with tools(options, logs) as (children, tools_cpu):
            paced, _ = profiles(options)
            stub, stub_url = await start_stub(children, tools_cpu, paced)
            generator = GeneratorClient.start(children, tools_cpu)
            async with storages(options, sources, children, tools_cpu) as stores:
                h = phases.Harness(
                    settings=settings_of(options),
                    children=children,
                    generator=generator,
                    stub=stub,
                    stub_url=stub_url,
                    run_id=secrets.token_hex(3),
                    parley_cpu=0 if options.pin else None,
                    tools_cpu=tools_cpu,
                    out=options.out,
                    server_env=dict(options.server_env),
                    deflate=options.deflate,
                    redis=stores.redis,
                    storage=stores.storage,
                    postgres=stores.postgres,
                )
                try:
                    results = await measure(options, h, sources)
                finally:
                    generator.quit()
                    children.stop_all()  # before the databases are dropped
    meta["seconds"] = time.monotonic() - started
    meta["load_after"] = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    results = {"meta": meta, **results}
    results["targets"] = evaluate(results)
    return finish(options, results)


def settings_of(options: Options) -> phases.Settings:
    return phases.Settings(
        rounds=options.rounds,
        transports=options.transports,
        stall_rounds=2,
        persistence_streams=options.persistence_streams,
        persistence_rounds=2,
        persistence_profile=Profile(16, options.fast_interval_ms),
        redis_streams=options.redis_streams,
        idle_max=options.idle_sockets,
        idle_step=options.idle_step,
        soak_seconds=options.soak,
        soak_streams=options.soak_streams,
        arrivals=options.arrivals,
        probe_samples=options.samples,
        burst_streams=options.burst_streams,
        stall_probe_up=not options.quick,
        scaling_levels=options.scaling_levels,
    )


def finish(options: Options, results: dict[str, Any]) -> int:
    json_path, md_path, png_path, problem = write(results, options.out)
    print()
    print(markdown(results))
    print(f"wrote {json_path}, {md_path}" + ("" if problem else f", {png_path}"))
    if problem:
        print(problem, file=sys.stderr)
    if options.publish:
        publish(results, png_path, REPO / "docs")
        print("updated docs/performance.md and docs/performance.png")
    failures = results.get("failures", [])
    for failure in failures:
        print(f"phase failed: {failure['phase']}: {failure['error']}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    if options.from_json is not None:
        results = json.loads(options.from_json.read_text())
        results["targets"] = evaluate(results)
        return finish(options, results)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(main_async(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: processes stopped, databases dropped", file=sys.stderr)
        return 130
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
