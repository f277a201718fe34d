"""What a run stands on: the process set, the stub, a scratch database and a private
Redis per source tree, the logs folder, and the description of the machine. Everything
started here is stopped however the run ends."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Profile
from bench.cpu import PostgresCpu
from bench.options import Options
from bench.peer import STORING_PEERS
from bench.processes import REPO, Child, Children, free_port, start_redis, wait_until_ok
from bench.servers import Scratch, Source, Storage, catalog_copy, scratch_database


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


async def start_stub(children: Children, cpu: int | None, profile: Profile) -> tuple[Child, str]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.stub", "--port", str(port)]
    argv += ["--tokens", str(profile.tokens), "--interval-ms", str(profile.interval_ms)]
    child = children.spawn("stub", argv, cpu=cpu)
    url = f"http://127.0.0.1:{port}"
    await wait_until_ok(child, f"{url}/health")
    return child, url


@dataclass
class Stores:
    """Per source tree (and per peer that stores, the floor): its scratch database and
    Redis, and who reads their CPU."""

    storage: dict[str, Storage]
    redis: dict[str, Child]
    postgres: dict[str, PostgresCpu]
    peers: dict[str, Scratch]  # peer name ->


@contextlib.asynccontextmanager
async def storages(
    options: Options, sources: Sequence[Source], children: Children, cpu: int | None
) -> AsyncIterator[Stores]:
    """A scratch database, a private Redis and a catalog copy per source tree; a
    scratch database and a private Redis per peer that stores."""
    async with contextlib.AsyncExitStack() as stack:
        stores = Stores({}, {}, {}, {})

        async def scratch(label: str) -> Scratch:
            database = await stack.enter_async_context(scratch_database(options.postgres_url))
            child, url = await start_redis(children, f"redis-{label}", cpu)
            stores.redis[label] = child
            counter = PostgresCpu(database)
            stack.push_async_callback(counter.close)  # before its database is dropped
            stores.postgres[label] = counter
            return Scratch(database, url)

        for source in sources:
            stored = await scratch(source.label)
            catalog = catalog_copy(source, children.logs / f"catalog-{source.label}")
            stores.storage[source.label] = Storage(stored.database_url, stored.redis_url, catalog)
        for peer in options.peers:
            if peer in STORING_PEERS:
                stores.peers[peer] = await scratch(peer)
        yield stores


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
