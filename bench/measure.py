"""Counters the harness reads: CPU and RSS from ``/proc``, Redis round trips, profiles.

* :func:`cpu_seconds` / :func:`rss_bytes`: user+system CPU and resident memory of a
  process (Linux ``/proc``; NaN elsewhere);
* :class:`CountingProxy`: a TCP proxy between Parley and its Redis that counts
  *round trips*: a round trip is a burst of client-to-server bytes that follows
  a server reply (or opens the connection), so a pipeline is one round trip and
  a blocking ``XREAD`` is one round trip however long it waits;
* :func:`command_stats`: Redis's own ``INFO commandstats`` (commands, not round trips);
* :func:`summarise_profile`: the top frames of a ``py-spy record --format raw`` file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name, which may hold spaces)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = _stat_fields(pid)
    return math.nan if fields is None else (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def started_at(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot): tells a process from a reused pid."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), from ``/proc``.

    ``uvicorn --workers N`` forks its workers under a supervisor that does no work
    itself: a process tree's CPU is the sum over these."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def rss_bytes(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.nan


# -- Redis -------------------------------------------------------------------------------


@dataclass
class ProxyCounts:
    connections: int = 0
    round_trips: int = 0
    bytes_up: int = 0
    bytes_down: int = 0

    def minus(self, earlier: ProxyCounts) -> ProxyCounts:
        return ProxyCounts(
            self.connections - earlier.connections,
            self.round_trips - earlier.round_trips,
            self.bytes_up - earlier.bytes_up,
            self.bytes_down - earlier.bytes_down,
        )


class _Upstream(asyncio.Protocol):
    def __init__(self, downstream: _Downstream) -> None:
        self.downstream = downstream
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.downstream.from_server(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.downstream.close()


class _Downstream(asyncio.Protocol):
    """Parley's side of one proxied connection."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.pending: list[bytes] = []
        self.client_turn = False  # the last bytes seen went client -> server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        _nodelay(transport)
        self.proxy.counts.connections += 1
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(
                lambda: _Upstream(self), self.proxy.target_host, self.proxy.target_port
            )
        except OSError:
            self.close()
            return
        self.upstream = upstream
        for data in self.pending:
            assert upstream.transport is not None
            upstream.transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        counts = self.proxy.counts
        if not self.client_turn:
            counts.round_trips += 1
            self.client_turn = True
        counts.bytes_up += len(data)
        if self.upstream is None or self.upstream.transport is None:
            self.pending.append(data)
        else:
            self.upstream.transport.write(data)

    def from_server(self, data: bytes) -> None:
        self.client_turn = False
        self.proxy.counts.bytes_down += len(data)
        if self.transport is not None:
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class CountingProxy:
    """Forwards ``listen_port`` to ``target``; runs on the harness's event loop."""

    target_url: str
    counts: ProxyCounts = field(default_factory=ProxyCounts)
    server: asyncio.AbstractServer | None = None
    port: int = 0

    @property
    def target_host(self) -> str:
        return urlsplit(self.target_url).hostname or "127.0.0.1"

    @property
    def target_port(self) -> int:
        return urlsplit(self.target_url).port or 6379

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> CountingProxy:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Downstream(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None

    def snapshot(self) -> ProxyCounts:
        return ProxyCounts(**self.counts.__dict__)


async def command_stats(redis_url: str) -> Counter[str]:
    """Calls per Redis command so far (``INFO commandstats``)."""
    redis = Redis.from_url(redis_url)
    try:
        info: dict[str, Any] = await redis.info("commandstats")
    finally:
        await redis.aclose()
    calls: Counter[str] = Counter()
    for name, stats in info.items():
        calls[name.removeprefix("cmdstat_").upper()] = int(stats["calls"])
    return calls


# -- a tiny HTTP client for the stub's control endpoints and Parley's /metrics ---------------


async def http_json(url: str, method: str = "GET", body: Any = None) -> Any:
    return json.loads(await http_text(url, method, body))


async def http_text(
    url: str, method: str = "GET", body: Any = None, headers: Mapping[str, str] | None = None
) -> str:
    """The body of one HTTP/1.1 request on a fresh connection; :class:`HTTPRefused`
    unless it answered 2xx. No client library: the harness stays light."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        payload = b"" if body is None else json.dumps(body).encode()
        target = address.path + (f"?{address.query}" if address.query else "")
        head = f"{method} {target} HTTP/1.1\r\nhost: {address.netloc}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head += f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
        writer.write(head.encode() + payload)
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        length = 0
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        content = await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
    status = int(status_line.split()[1])
    if not 200 <= status < 300:
        raise HTTPRefused(f"{method} {url}: {status}")
    return content.decode()


class HTTPRefused(Exception):
    """A request the harness made was answered with an error status."""


# -- profiles -----------------------------------------------------------------------------


NATIVE = "(no Python frame: uvloop's C event loop)"


def summarise_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Where the samples of py-spy's collapsed stacks (``--format raw``) went.

    ``self``: the innermost frame; ``parley``: every Parley function on the stack
    (inclusive), leaving out the command line's entry points; ``packages``: self
    time by top-level package. With ``--gil``, samples of the event loop's C code
    have no Python frame at all: they are counted as :data:`NATIVE`.
    """
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = [_frame_name(frame) for frame in stack.split(";") if frame.strip()]
        frames = frames or [NATIVE]  # the GIL held by C code (uvloop's loop) with no frame
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        leaf = frames[-1]
        packages[
            leaf if leaf == NATIVE else leaf.split("/")[0].split(":")[0].removesuffix(".py")
        ] += count
        for name in {f for f in frames if f.startswith("parley/") and not _entry(f)}:
            ours[name] += count
    if total == 0:
        return {"samples": 0, "self": [], "parley": [], "packages": []}

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self": share(own),
        "parley": share(ours),
        "packages": share(packages),
    }


def _entry(frame: str) -> bool:
    """The command line's frames, below everything the server does."""
    return frame.startswith(("parley/cli.py:", "parley/__main__.py:"))


def _frame_name(frame: str) -> str:
    """``f (redis/asyncio/client.py:12)`` -> ``redis/asyncio/client.py:f``.

    py-spy already shortens files to their module path; absolute paths (code
    outside ``sys.path``) are cut after ``site-packages`` or ``server``.
    """
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith("/"):
        parts = Path(path).parts
        for anchor in ("site-packages", "server"):
            if anchor in parts:
                parts = parts[len(parts) - parts[::-1].index(anchor) :]
                break
        path = "/".join(parts[-3:])
    return f"{path}:{name.strip()}" if path else name.strip()
