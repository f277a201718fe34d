"""The CPU a round costs: the server's, and what it causes in Redis and Postgres.

Each process is read from ``/proc/<pid>/stat`` before and after a round. The
Postgres processes are found by asking Postgres itself (``pg_stat_activity``):

* the backends connected to the source's scratch database serve Parley alone
  (the harness's own connections name themselves :data:`HARNESS_APP` and are
  left out): their CPU counts towards Parley's CPU per token;
* the server-wide processes (WAL writer, checkpointer, background writer) work
  for every database on that Postgres, the harness's and anyone else's: their
  CPU is reported beside, never added in.

A backend that starts during a round counts from zero; a pid that cannot be
read (a Postgres on another machine) counts as nothing, and the report says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import asyncpg

from bench.figures import Usage
from bench.measure import cpu_seconds

HARNESS_APP = "parley-bench"
SHARED_TYPES = ("walwriter", "checkpointer", "background writer")
Pids = dict[int, float]  # pid -> CPU seconds so far


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds so far of every process in a path, at ``wall``."""

    wall: float
    parley: float = math.nan
    stub: float = math.nan
    generator: float = math.nan
    redis: float = math.nan
    backends: Pids | None = None  # None: no Postgres in this path (the baseline, a peer)
    shared: Pids = field(default_factory=dict)


def used(before: Pids, after: Pids) -> float:
    """CPU the processes of ``after`` used since ``before`` (new ones from zero)."""
    total = 0.0
    for pid, now in after.items():
        then = before.get(pid, 0.0)
        if not math.isnan(now) and not math.isnan(then) and now >= then:
            total += now - then
    return total


def window(before: Snapshot, after: Snapshot) -> Usage:
    return Usage(
        wall=after.wall - before.wall,
        parley=after.parley - before.parley,
        stub=after.stub - before.stub,
        generator=after.generator - before.generator,
        redis=after.redis - before.redis,
        postgres=math.nan
        if before.backends is None or after.backends is None
        else used(before.backends, after.backends),
        postgres_shared=used(before.shared, after.shared),
    )


class PostgresCpu:
    """The Postgres processes serving one database, and the server-wide ones."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.connection: asyncpg.Connection | None = None
        self.readable = True  # False once a pid could not be read: Postgres is elsewhere

    async def pids(self) -> tuple[list[int], list[int]]:
        if self.connection is None:
            self.connection = await harness_connection(self.database_url)
        rows = await self.connection.fetch(
            "SELECT pid, backend_type, datname = current_database() AS ours"
            " FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND coalesce(application_name, '') <> $1",
            HARNESS_APP,
        )
        ours = [row["pid"] for row in rows if row["ours"]]
        shared = [row["pid"] for row in rows if row["backend_type"] in SHARED_TYPES]
        return ours, shared

    async def snapshot(self) -> tuple[Pids, Pids]:
        ours, shared = await self.pids()
        backends = {pid: cpu_seconds(pid) for pid in ours}
        server = {pid: cpu_seconds(pid) for pid in shared}
        if any(math.isnan(v) for v in [*backends.values(), *server.values()]):
            self.readable = False
        return backends, server

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None


async def harness_connection(database_url: str) -> asyncpg.Connection:
    """A connection Postgres CPU accounting leaves out (``application_name``)."""
    return await asyncpg.connect(database_url, server_settings={"application_name": HARNESS_APP})


def now() -> float:
    return time.perf_counter()
