"""The command line: ``python -m bench``'s options, their defaults (full or ``--quick``),
and the knobs of the run they set."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.arrivals import MODES, Arrivals
from bench.common import Profile
from bench.peer import PEERS
from bench.phases.harness import Settings
from bench.processes import REPO
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
    peers: tuple[str, ...] = ()
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
        peers=tuple(dict.fromkeys(args.peer or ())),
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
    add(
        "--peer",
        choices=PEERS,
        action="append",
        help="measure a peer in the same run (repeatable): litellm (LiteLLM proxy), floor "
        "(the least work Parley's promises need, on Parley's stack: bench/floor.py)",
    )
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


def profiles(options: Options) -> tuple[Profile, Profile]:
    """The paced profile (``--interval-ms``) and the fast one (``--fast-interval-ms``)."""
    paced = Profile(options.tokens, options.interval_ms)
    return paced, Profile(options.tokens, options.fast_interval_ms)


def settings_of(options: Options) -> Settings:
    """The phases' knobs from the options (the rounds per stall-free probe and per
    persistence burst are no option: two each)."""
    return Settings(
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
