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
   only unless ``--scaling``; see bench/phases/scaling.py);
8. memory per idle authenticated WebSocket (fresh instance);
9. Redis round trips per token (fresh instance behind a counting proxy);
10. optional soak (``--soak SECONDS``).

``--peer litellm`` adds LiteLLM proxy (its own virtualenv, no database), and
``--peer floor`` the floor (bench/floor.py: the least work Parley's promises need,
on Parley's stack), to the first-token, ladder and burst phases, measured
through the same client.

It prints the Markdown, writes ``bench.json``, ``bench.md`` and ``bench.png``
to ``--out`` and with ``--publish`` updates docs/performance.md. Every process,
database and Redis it started is gone when it exits, also on failure or Ctrl-C.

Its options are read in bench/options.py, what it stands on is started in
bench/environment.py, and bench/schedule.py decides which phases run in which order.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bench.environment import logs_folder, machine, start_stub, storages, tiktoken_cache, tools
from bench.options import Options, parse_options, profiles, settings_of
from bench.phases.harness import Harness
from bench.processes import REPO, BenchError, GeneratorClient, raise_file_limit
from bench.report.files import publish, write
from bench.report.judge import evaluate
from bench.report.page import markdown
from bench.schedule import measure
from bench.servers import Source, check_import


async def main_async(options: Options) -> int:
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    raise_file_limit()
    tiktoken_cache()
    sources = sources_of(options)
    started = time.monotonic()
    meta = describe_run(options, sources)
    print(f"machine: {meta['machine']}", flush=True)
    results = await measured(options, sources)
    meta["seconds"] = time.monotonic() - started
    meta["load_after"] = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    results = {"meta": meta, **results}
    results["targets"] = evaluate(results)
    return finish(options, results)


def sources_of(options: Options) -> list[Source]:
    """The ``--server-src`` trees, labelled apart, each checked to import its own parley."""
    sources = [Source.at(path, None) for path in options.sources]
    if len({s.label for s in sources}) < len(sources):
        sources = [Source.at(s.root, f"{s.label}-{i}") for i, s in enumerate(sources)]
    for source in sources:
        check_import(source)
    return sources


def describe_run(options: Options, sources: Sequence[Source]) -> dict[str, Any]:
    """The report's first lines: when, how, on what and on which machine."""
    return {
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


async def measured(options: Options, sources: Sequence[Source]) -> dict[str, Any]:
    """Every phase, with the run's processes, databases and Redis around them."""
    with logs_folder(options.logs) as logs:
        async with tools(options, logs) as (children, tools_cpu):
            paced, _ = profiles(options)
            stub, stub_url = await start_stub(children, tools_cpu, paced)
            generator = GeneratorClient.start(children, tools_cpu)
            async with storages(options, sources, children, tools_cpu) as stores:
                h = Harness(
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
                    peer_storage=stores.peers,
                )
                try:
                    return await measure(options, h, sources)
                finally:
                    generator.quit()
                    children.stop_all()  # before the databases are dropped


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
