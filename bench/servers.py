"""Parley under test: source trees, their catalogs, scratch databases, running instances.

Each ``--server-src`` tree gets its own scratch Postgres database, its own private
redis-server and a copy of its catalog with one extra agent pinned to an
Anthropic model. ``python -m parley serve`` runs with ``PYTHONPATH=<src>/server``,
so two trees (before and after a change) can be measured in the same run.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import yaml
from redis.asyncio import Redis

from bench.common import ANTHROPIC_MODEL, OPENAI_MODEL
from bench.cpu import harness_connection
from bench.processes import BenchError, Child, Children, Cpus, free_port, wait_until_ok
from parley.storage.keys import SHARDS, Keys

JWT_SECRET = "bench-secret-" + "x" * 40
METRICS_TOKEN = "bench-metrics-" + "x" * 32  # /metrics exists only with a token
OPENAI_AGENT = "agent_gamma"  # technical support: output rules on, no disclaimer
ANTHROPIC_AGENT = "bench_anthropic"
# Every shard's set of running replies (the harness leaves PARLEY_REDIS_PREFIX at
# its default), and the one set of source trees from before they were sharded.
ACTIVE_SETS = [Keys().active_replies(shard) for shard in range(SHARDS)] + ["parley:replies:active"]
# Their sizes added up in one command: the harness polls it every few milliseconds.
COUNT_ACTIVE = (
    "local n = 0 for _, key in ipairs(KEYS) do n = n + redis.call('SCARD', key) end return n"
)


@dataclass(frozen=True)
class Source:
    """A Parley source tree: ``<root>/server`` holds the ``parley`` package."""

    root: Path
    label: str
    commit: str
    dirty: tuple[str, ...]  # files under server/ that differ from the commit

    @classmethod
    def at(cls, root: Path, label: str | None = None) -> Source:
        root = root.resolve()
        if not (root / "server" / "parley").is_dir():
            raise BenchError(f"--server-src {root}: no server/parley package there")
        commit = _git(root, "rev-parse", "HEAD") or "unknown"
        status = _git(root, "status", "--porcelain", "--", "server", strip=False)
        dirty = tuple(line[3:] for line in status.splitlines() if line.strip())
        return cls(root, label or commit[:8], commit, dirty)

    def describe(self) -> str:
        changed = f" plus uncommitted changes to {', '.join(self.dirty)}" if self.dirty else ""
        return f"commit {self.commit[:12]}{changed} ({self.root})"


def _git(root: Path, *args: str, strip: bool = True) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip() if strip else done.stdout


def catalog_copy(source: Source, folder: Path) -> Path:
    """The tree's own catalog plus an agent pinned to the stub's Anthropic model."""
    folder.mkdir(parents=True, exist_ok=True)
    # Whatever catalog folders the tree has (older trees have no tools/ or knowledge/).
    for name in ("personalities", "rules", "tools", "knowledge", "providers.yaml"):
        if (source.root / name).is_dir():
            shutil.copytree(source.root / name, folder / name, dirs_exist_ok=True)
        elif (source.root / name).is_file():
            shutil.copy(source.root / name, folder / name)
    agents = yaml.safe_load((source.root / "agents.yaml").read_text())
    agents["agents"].append(
        {
            "id": ANTHROPIC_AGENT,
            "name": "Bench Anthropic",
            "description": "Technical support answered by the stub's Anthropic API.",
            "personality": "supportive",
            "rules": "technical_support",
            "models": [f"anthropic:{ANTHROPIC_MODEL}"],
        }
    )
    (folder / "agents.yaml").write_text(yaml.safe_dump(agents))
    return folder


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """A database of our own, dropped however the run ends."""
    name = f"parley_bench_{secrets.token_hex(4)}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@dataclass(frozen=True)
class Scratch:
    """A scratch database and a private Redis, made for one source tree or peer."""

    database_url: str
    redis_url: str


@dataclass
class Storage:
    """One source tree's database and private Redis (shared by its instances)."""

    database_url: str
    redis_url: str
    catalog: Path


@dataclass
class Instance:
    """A running ``parley serve`` process."""

    name: str
    source: Source
    storage: Storage
    child: Child
    port: int
    poller: Redis | None = None  # the harness's one connection to the instance's Redis
    database: asyncpg.Connection | None = None  # and to its database

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def active_replies(self) -> int:
        """Replies running (``SCARD`` of every shard's set: a command Parley never sends)."""
        if self.poller is None:
            self.poller = Redis.from_url(self.storage.redis_url)
        return int(await self.poller.eval(COUNT_ACTIVE, len(ACTIVE_SETS), *ACTIVE_SETS))

    async def upstream_ttfts(self, users: str) -> list[float]:
        """Parley's own time to first token of its upstream calls (``llm_usage.ttft_ms``)."""
        if self.database is None:
            self.database = await harness_connection(self.storage.database_url)
        rows = await self.database.fetch(
            "SELECT ttft_ms FROM llm_usage WHERE user_id LIKE $1 AND ttft_ms IS NOT NULL",
            users + ".%",
        )
        return [float(row["ttft_ms"]) for row in rows]

    async def stop(self) -> None:
        if self.database is not None:
            await self.database.close()
            self.database = None
        if self.poller is not None:
            await self.poller.aclose()
            self.poller = None
        self.child.stop()


def server_env(
    source: Source, storage: Storage, redis_url: str, stub_url: str, data_dir: Path
) -> dict[str, str]:
    return {
        "PYTHONPATH": str(source.root / "server"),
        "DATABASE_URL": storage.database_url,
        "REDIS_URL": redis_url,
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PARLEY_METRICS_TOKEN": METRICS_TOKEN,
        "PARLEY_CATALOG": str(storage.catalog),
        "PARLEY_WEB_DIR": str(source.root / "web"),
        "PARLEY_DATA_DIR": str(data_dir),
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": f"{stub_url}/v1",
        "ANTHROPIC_API_KEY": "sk-ant-bench",
        "ANTHROPIC_BASE_URL": stub_url,
        "PARLEY_MODEL": f"openai:{OPENAI_MODEL}",
        "PARLEY_WS_FRAMES_PER_SECOND": "100000",
        "PARLEY_WS_FRAME_BURST": "100000",
        "PARLEY_REST_RATE_LIMIT": "100000000/minute",
        "PARLEY_LOG_LEVEL": "WARNING",
    }


async def start_instance(
    children: Children,
    name: str,
    source: Source,
    storage: Storage,
    *,
    stub_url: str,
    redis_url: str | None = None,
    cpu: Cpus | None = None,
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
) -> Instance:
    """``python -m parley serve`` from ``source``, ready when ``/ready`` answers 200.

    With ``workers`` > 1 the child is uvicorn's supervisor: its CPU and RSS are
    those of its process tree."""
    port = free_port()
    data_dir = children.logs / f"{name}-data"
    env = server_env(source, storage, redis_url or storage.redis_url, stub_url, data_dir)
    for variable, value in (extra_env or {}).items():
        env[variable] = f"{value}:{env[variable]}" if variable == "PYTHONPATH" else value
    argv = [sys.executable, "-m", "parley", "serve", "--port", str(port)]
    argv += ["--workers", str(workers)] if workers > 1 else []
    child = children.spawn(name, argv, env=env, cwd=source.root, cpu=cpu, tree=workers > 1)
    instance = Instance(name, source, storage, child, port)
    await wait_until_ok(child, f"{instance.url}/ready")
    return instance


def check_import(source: Source) -> None:
    """Fail loudly if ``PYTHONPATH=<src>/server`` would import ``parley`` from elsewhere."""
    env = {"PYTHONPATH": str(source.root / "server"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", "import parley; print(parley.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    found = Path(done.stdout.strip() or "?").resolve()
    if not found.is_relative_to(source.root / "server"):
        raise BenchError(f"--server-src {source.root}: parley imports from {found}")
