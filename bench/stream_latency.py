"""Streaming latency: what Parley's architecture adds over streaming straight from the vendor.

One command starts everything it measures and removes it afterwards::

    python bench/stream_latency.py            # defaults finish in about two minutes

For each upstream profile (``--words`` words, ``--delays`` ms apart) it starts the fake
vendor (``python -m tests.support.fake_llm``), a real ``parley serve`` process against a
scratch Postgres database and the shared Redis, then times the same reply over

* ``baseline``: the official ``openai`` SDK streaming straight from the fake vendor;
* ``ws``: a WebSocket client doing ``start`` (untimed), then ``message`` to ``done``;
* ``sse``: ``POST /v1/chat`` with ``"stream": true`` (creates the conversation too).

with one client sending ``--sequential`` replies in a row, then ``--concurrency`` clients
at once for ``--rounds`` rounds. Paths take turns round by round so that load from
elsewhere on the machine hits them alike. TTFT is measured from the request (the
``message`` frame, the POST, the SDK call) to the first text; total to the end of the
stream (``done``). It prints Markdown tables; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import httpx2
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from parley.auth.tokens import mint_token
from parley.replies.keys import Keys

REPO = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"
AGENT = "agent_gamma"  # technical_support: output rules on, no disclaimer appended
PROMPT = "My laptop will not boot after an update. What should I try first?"
JWT_SECRET = "bench-secret-" + "x" * 40
START_TIMEOUT_SECONDS = 60.0
REPLY_TIMEOUT_SECONDS = 60.0
PATHS = ("baseline", "ws", "sse")
KEEP_ALIVE = {"keepalive_expiry": 2.0}  # seconds; below uvicorn's 5 s

Frame = dict[str, Any]


class BenchError(Exception):
    """A reply the benchmark could not time."""


# -- options ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """How the fake vendor answers: ``words`` chunks, ``delay_ms`` apart."""

    words: int
    delay_ms: float

    @property
    def label(self) -> str:
        return f"{self.words} words, {self.delay_ms:g} ms apart"

    @property
    def key(self) -> str:
        return f"d{self.delay_ms:g}".replace(".", "p")

    @property
    def text(self) -> str:
        """What the fake vendor sends (see ``tests/support/fake_llm.py``)."""
        return "".join(("" if i == 0 else " ") + f"word{i}" for i in range(self.words))


@dataclass(frozen=True)
class Scenario:
    clients: int
    rounds: int

    @property
    def key(self) -> str:
        return f"c{self.clients}"


@dataclass(frozen=True)
class Options:
    upstreams: tuple[Upstream, ...]
    scenarios: tuple[Scenario, ...]
    paths: tuple[str, ...]
    postgres_url: str
    redis_url: str
    tiktoken_cache: str
    parley_log_level: str
    warm_up: bool
    pause: float  # seconds between rounds
    logs: Path | None  # keep the servers' logs here (default: a temporary folder)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    args = _parser().parse_args(argv)
    unknown = set(args.paths) - set(PATHS)
    if unknown or "baseline" not in args.paths:
        raise SystemExit(f"--paths: choose from {', '.join(PATHS)}, baseline included")
    scenarios = [Scenario(1, args.sequential)] if args.sequential else []
    scenarios += [Scenario(clients, args.rounds) for clients in args.concurrency]
    if not scenarios or min(scenario.clients for scenario in scenarios) < 1:
        raise SystemExit("nothing to run: give --sequential and/or --concurrency")
    return Options(
        upstreams=tuple(Upstream(args.words, delay) for delay in args.delays),
        scenarios=tuple(scenarios),
        paths=tuple(path for path in PATHS if path in args.paths),
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
        tiktoken_cache=args.tiktoken_cache,
        parley_log_level=args.parley_log_level,
        warm_up=not args.no_warm_up,
        pause=args.pause_ms / 1000,
        logs=args.logs,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add = parser.add_argument
    add("--words", type=int, default=60, help="words per reply (default 60)")
    add("--delays", type=_floats, default=(10.0, 0.0), help="ms between words (default 10,0)")
    add("--sequential", type=int, default=20, help="replies in a row, one client (0: skip)")
    add("--concurrency", type=_ints, default=(20, 50), help="clients at once (default 20,50)")
    add("--rounds", type=int, default=2, help="rounds per concurrency level (default 2)")
    add("--paths", type=_words, default=PATHS, help="baseline,ws,sse (default: all)")
    postgres = "postgresql://postgres@127.0.0.1:5432/postgres"
    add("--postgres-url", default=postgres, help="admin DSN; a scratch database is made there")
    add("--redis-url", default="redis://127.0.0.1:6379/0", help="Parley's REDIS_URL")
    add("--tiktoken-cache", default=_default_tiktoken_cache())
    add("--parley-log-level", default="WARNING", help="PARLEY_LOG_LEVEL of the server")
    add("--no-warm-up", action="store_true", help="time the very first replies too")
    add("--pause-ms", type=float, default=100, help="idle time between rounds (default 100)")
    add("--logs", type=Path, help="keep the fake vendor's and Parley's logs in this folder")
    return parser


def _default_tiktoken_cache() -> str:
    return os.environ.get("TIKTOKEN_CACHE_DIR") or str(REPO.parent / "shared" / "tiktoken-cache")


def _words(raw: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in raw.split(",") if word.strip())


def _ints(raw: str) -> tuple[int, ...]:
    return tuple(int(word) for word in _words(raw))


def _floats(raw: str) -> tuple[float, ...]:
    return tuple(float(word) for word in _words(raw))


# -- one timed reply -------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    ttft: float  # seconds from the request to the first text
    total: float  # seconds from the request to the end of the reply (``done``)
    last: float  # seconds from the request to the last text
    gaps: tuple[float, ...]  # seconds between consecutive pieces of text
    text: str
    status: str
    accepted: float | None = None  # Parley: seconds from the request to ``accepted``

    @property
    def closing(self) -> float:
        """From the last text to the end of the reply (Parley: storing it, then ``done``)."""
        return self.total - self.last


class Stopwatch:
    """Started right before a request; stamps every piece of text as it arrives."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.accepted: float | None = None
        self.stamps: list[float] = []
        self.parts: list[str] = []

    def text(self, piece: str) -> None:
        self.stamps.append(time.perf_counter())
        self.parts.append(piece)

    def mark_accepted(self) -> None:
        self.accepted = time.perf_counter() - self.started

    def sample(self, status: str) -> Sample:
        ended = time.perf_counter()
        if not self.stamps:
            raise BenchError(f"reply ended ({status}) without text")
        gaps = tuple(later - earlier for earlier, later in itertools.pairwise(self.stamps))
        return Sample(
            ttft=self.stamps[0] - self.started,
            total=ended - self.started,
            last=self.stamps[-1] - self.started,
            gaps=gaps,
            text="".join(self.parts),
            status=status,
            accepted=self.accepted,
        )


@dataclass
class Footprint:
    """Redis keys this run made Parley create, deleted at the end (Redis is shared)."""

    replies: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    conversations: set[str] = field(default_factory=set)

    def key_names(self, keys: Keys) -> list[str]:
        names = [keys.session(session) for session in self.sessions]
        for reply in self.replies:
            names += [keys.events(reply), keys.text(reply), keys.state(reply)]
            names += [keys.lease(reply), keys.cancel(reply), keys.reaping(reply)]
        for conversation in self.conversations:
            names += [keys.conversation_reply(conversation), keys.history(conversation)]
        return names


def on_parley_frame(frame: Frame, watch: Stopwatch, footprint: Footprint) -> str | None:
    """Record one WebSocket/SSE frame; the reply's status once it is ``done``."""
    kind = frame.get("type")
    if kind == "delta":
        watch.text(str(frame["text"]))
    elif kind == "accepted":
        watch.mark_accepted()
        footprint.replies.add(str(frame["reply_id"]))
    elif kind == "done":
        return str(frame["status"])
    elif kind in ("error", "resync"):
        raise BenchError(f"unexpected frame: {frame}")
    return None


class Turn(Protocol):
    """A client ready to ask for one reply (set-up is not timed)."""

    async def run(self) -> Sample: ...

    async def close(self) -> None: ...


class BaselineTurn:
    def __init__(self, client: AsyncOpenAI) -> None:
        self.client = client

    async def run(self) -> Sample:
        watch = Stopwatch()
        stream = await self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},  # as Parley asks
            max_tokens=1000,
        )
        async with asyncio.timeout(REPLY_TIMEOUT_SECONDS):
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        watch.text(choice.delta.content)
        return watch.sample("complete")

    async def close(self) -> None:
        return None


class WebSocketTurn:
    def __init__(self, connection: ClientConnection, footprint: Footprint) -> None:
        self.connection = connection
        self.footprint = footprint

    @classmethod
    async def open(cls, url: str, token: str, footprint: Footprint) -> WebSocketTurn:
        headers = {"Authorization": f"Bearer {token}"}
        connection = await connect(url, additional_headers=headers, max_size=None)
        turn = cls(connection, footprint)
        await turn.send({"type": "start", "agent": AGENT})
        session = await turn.receive()
        if session.get("type") != "session":
            await turn.close()
            raise BenchError(f"start refused: {session}")
        footprint.sessions.add(str(session["session_id"]))
        footprint.conversations.add(str(session["conversation_id"]))
        return turn

    async def send(self, frame: Frame) -> None:
        await self.connection.send(json.dumps(frame))

    async def receive(self) -> Frame:
        frame: Frame = json.loads(await self.connection.recv())
        return frame

    async def run(self) -> Sample:
        watch = Stopwatch()
        await self.send({"type": "message", "client_id": str(uuid.uuid4()), "text": PROMPT})
        async with asyncio.timeout(REPLY_TIMEOUT_SECONDS):
            while (status := on_parley_frame(await self.receive(), watch, self.footprint)) is None:
                pass
        return watch.sample(status)

    async def close(self) -> None:
        await self.connection.close()


class SseTurn:
    def __init__(self, http: httpx.AsyncClient, token: str, footprint: Footprint) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}
        self.footprint = footprint

    async def run(self) -> Sample:
        body = {"agent": AGENT, "message": PROMPT, "stream": True}
        watch = Stopwatch()
        async with (
            asyncio.timeout(REPLY_TIMEOUT_SECONDS),
            self.http.stream("POST", "/v1/chat", json=body, headers=self.headers) as response,
        ):
            if response.status_code != 200:
                raise BenchError(f"POST /v1/chat: HTTP {response.status_code}")
            status = await self._read(response.aiter_lines(), watch)
        return watch.sample(status)

    async def _read(self, lines: AsyncIterator[str], watch: Stopwatch) -> str:
        async for line in lines:
            if not line.startswith("data:"):
                continue  # "event:" names repeat the frame's type; blank lines end events
            status = on_parley_frame(json.loads(line[5:]), watch, self.footprint)
            if status is not None:
                return status
        raise BenchError("the event stream ended before done")

    async def close(self) -> None:
        return None


# -- the clients of one profile ---------------------------------------------------------


@dataclass
class Clients:
    """Everything the three paths need to open a turn for a given user."""

    vendor: AsyncOpenAI
    http: httpx.AsyncClient
    ws_url: str
    footprint: Footprint
    server_cpu: Callable[[], float]  # CPU seconds the Parley process has used so far

    async def open(self, path: str, user_id: str) -> Turn:
        if path == "baseline":
            return BaselineTurn(self.vendor)
        token = mint_token(JWT_SECRET, user_id=user_id, name="Bench", ttl_seconds=3600)
        if path == "ws":
            return await WebSocketTurn.open(self.ws_url, token, self.footprint)
        return SseTurn(self.http, token, self.footprint)


@contextlib.asynccontextmanager
async def clients_for(
    vendor_url: str, server: Child, footprint: Footprint
) -> AsyncIterator[Clients]:
    # Idle connections are dropped before the servers' own 5 s keep-alive timeout
    # (uvicorn's), so a request never races the server closing its connection.
    vendor_http = DefaultAsyncHttpxClient(
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=200, **KEEP_ALIVE)
    )
    vendor = AsyncOpenAI(
        api_key="sk-bench", base_url=vendor_url, max_retries=0, http_client=vendor_http
    )
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, **KEEP_ALIVE)
    http = httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60)
    async with vendor, http:
        ws_url = server.url.replace("http://", "ws://", 1) + "/ws"
        yield Clients(vendor, http, ws_url, footprint, server.cpu_seconds)


# -- running scenarios ------------------------------------------------------------------


@dataclass
class Outcome:
    """The samples of one path in one scenario, and how many replies failed."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0  # seconds spent in this path's rounds (set-up included)
    server_cpu: float = 0.0  # CPU seconds the Parley process used meanwhile
    client_cpu: float = 0.0  # CPU seconds this benchmark process used meanwhile


async def metered_round(
    clients: Clients, path: str, users: Sequence[str], outcome: Outcome
) -> list[Sample | str]:
    wall, server, client = time.perf_counter(), clients.server_cpu(), time.process_time()
    results = await run_round(clients, path, users)
    outcome.wall += time.perf_counter() - wall
    outcome.server_cpu += clients.server_cpu() - server
    outcome.client_cpu += time.process_time() - client
    return results


async def run_round(clients: Clients, path: str, users: Sequence[str]) -> list[Sample | str]:
    """Open one turn per user (untimed), then run them all at once."""
    opened = await asyncio.gather(
        *(clients.open(path, user) for user in users), return_exceptions=True
    )
    turns = [turn for turn in opened if not isinstance(turn, BaseException)]
    try:
        ran = await asyncio.gather(*(turn.run() for turn in turns), return_exceptions=True)
    finally:
        await asyncio.gather(*(turn.close() for turn in turns), return_exceptions=True)
    refused = [error for error in opened if isinstance(error, BaseException)]
    return [_checked(result) for result in [*ran, *refused]]


def _checked(result: Sample | BaseException) -> Sample | str:
    if isinstance(result, asyncio.CancelledError | KeyboardInterrupt):
        raise result
    if isinstance(result, BaseException):
        return _describe(result)
    return result


def _describe(error: BaseException) -> str:
    """The error and its causes, e.g. ``APIConnectionError: … <- ReadError: …``."""
    parts: list[str] = []
    cause: BaseException | None = error
    while cause is not None and len(parts) < 3:
        parts.append(f"{type(cause).__name__}: {cause}".strip().rstrip(":"))
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(parts)


async def run_scenario(
    clients: Clients, options: Options, scenario: Scenario, prefix: str, expected: str
) -> dict[str, Outcome]:
    """``rounds`` rounds; within each, every path in turn with ``clients`` clients.

    Rounds are ``options.pause`` apart: the fake vendor's sockets lack TCP_NODELAY,
    so a request sent on a keep-alive connection within ~40 ms of the previous
    reply on it waits for a delayed ACK (see docs/benchmarks.md).
    """
    outcomes = {path: Outcome() for path in options.paths}
    for _ in range(scenario.rounds):
        for path in options.paths:
            users = [f"{prefix}.{path}.{i}" for i in range(scenario.clients)]
            for result in await metered_round(clients, path, users, outcomes[path]):
                _record(outcomes[path], result, expected)
            await asyncio.sleep(options.pause)
    return outcomes


def _record(outcome: Outcome, result: Sample | str, expected: str) -> None:
    if isinstance(result, str):
        outcome.errors.append(result)
    elif result.status != "complete" or result.text != expected:
        outcome.errors.append(f"status {result.status}, {len(result.text)} chars")
    else:
        outcome.samples.append(result)


async def warm_up(clients: Clients, options: Options, prefix: str) -> None:
    """Fill connection pools (SDK, asyncpg, Redis) before anything is timed."""
    count = max(scenario.clients for scenario in options.scenarios)
    for path in options.paths:
        await run_round(clients, path, [f"{prefix}.warm.{path}.{i}" for i in range(count)])
        await asyncio.sleep(options.pause)


@dataclass(frozen=True)
class UpstreamCalls:
    """Parley's own record of its upstream calls (``llm_usage``) for some users."""

    ttft_ms: tuple[float, ...] = ()  # first-token times it measured
    failed: int = 0  # calls that did not complete (each one retried or failed a reply)


async def upstream_calls(database_url: str, user_prefix: str) -> UpstreamCalls:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT ttft_ms, status FROM llm_usage WHERE user_id LIKE $1", user_prefix + ".%"
        )
    finally:
        await connection.close()
    ttfts = tuple(float(row["ttft_ms"]) for row in rows if row["ttft_ms"] is not None)
    return UpstreamCalls(ttfts, sum(row["status"] != "complete" for row in rows))


# -- processes and storage ----------------------------------------------------------------


@dataclass
class Child:
    """A process this benchmark started, with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far (Linux ``/proc``; NaN elsewhere)."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = stat.rsplit(")", 1)[1].split()  # fields 3.. of proc(5)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def spawn(name: str, argv: list[str], env: dict[str, str], logs: Path, url: str) -> Child:
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches us only; we stop children in order
        )
    return Child(name, process, log_path, url)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_until(child: Child, ready: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise BenchError(f"{child.name} exited during start:\n{child.tail()}")
        with contextlib.suppress(OSError, httpx.HTTPError):
            if await ready():
                return
        await asyncio.sleep(0.1)  # polling a readiness probe
    raise BenchError(f"{child.name} not ready in {START_TIMEOUT_SECONDS:g}s:\n{child.tail()}")


async def accepts_connections(url: str) -> bool:
    address = urlsplit(url)
    _, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.close()
    await writer.wait_closed()
    return True


async def answers_ready(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as http:
        return (await http.get(f"{url}/ready")).status_code == 200


@contextlib.asynccontextmanager
async def running(child: Child, ready: Callable[[], Awaitable[bool]]) -> AsyncIterator[Child]:
    """Stop the child however the block ends; show its log if the block failed."""
    try:
        await wait_until(child, ready)  # its error carries the log
        try:
            yield child
        except Exception:
            print(f"--- last lines of {child.name}'s log ---\n{child.tail()}", file=sys.stderr)
            raise
    finally:
        child.stop()


def fake_vendor(upstream: Upstream, logs: Path) -> Child:
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.fake_llm", "--port", str(port)]
    argv += ["--words", str(upstream.words), "--delay", str(upstream.delay_ms / 1000)]
    return spawn(f"fake-vendor-{upstream.key}", argv, {}, logs, f"http://127.0.0.1:{port}/v1")


def parley_server(
    options: Options, upstream_key: str, database_url: str, vendor_url: str, logs: Path
) -> Child:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": options.redis_url,
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PARLEY_CATALOG": str(REPO),
        "PARLEY_WEB_DIR": str(REPO / "web"),
        "PARLEY_DATA_DIR": str(logs / "data"),
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": vendor_url,
        "PARLEY_MODEL": f"openai:{MODEL}",
        "PARLEY_WS_FRAMES_PER_SECOND": "10000",
        "PARLEY_WS_FRAME_BURST": "10000",
        "PARLEY_REST_RATE_LIMIT": "1000000/minute",
        "PARLEY_LOG_LEVEL": options.parley_log_level,
        "TIKTOKEN_CACHE_DIR": options.tiktoken_cache,
    }
    argv = [sys.executable, "-m", "parley", "serve", "--port", str(port)]
    return spawn(f"parley-{upstream_key}", argv, env, logs, f"http://127.0.0.1:{port}")


@contextlib.contextmanager
def logs_folder(keep: Path | None) -> Iterator[Path]:
    """``keep`` (created if needed), or a temporary folder removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as folder:
        yield Path(folder)


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    """A database of our own, dropped however the run ends."""
    name = f"parley_bench_{secrets.token_hex(3)}"
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


async def forget_keys(redis_url: str, footprint: Footprint) -> None:
    names = footprint.key_names(Keys())
    redis = Redis.from_url(redis_url)
    try:
        for start in range(0, len(names), 500):
            await redis.delete(*names[start : start + 500])
    finally:
        await redis.aclose()


# -- figures --------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class Row:
    clients: int
    path: str
    outcome: Outcome
    upstream: UpstreamCalls = UpstreamCalls()

    def ms(self, metric: str, fraction: float) -> float:
        """A percentile, in ms, of a :class:`Sample` attribute, or of all gaps."""
        samples = self.outcome.samples
        if metric == "gaps":
            return 1000 * percentile([gap for s in samples for gap in s.gaps], fraction)
        values = [getattr(s, metric) for s in samples if getattr(s, metric) is not None]
        return 1000 * percentile(values, fraction)

    def pieces(self) -> float:
        samples = self.outcome.samples
        return sum(len(s.gaps) + 1 for s in samples) / len(samples) if samples else math.nan

    def replies(self) -> int:
        return len(self.outcome.samples) + len(self.outcome.errors)


LATENCY_COLUMNS = (
    "clients",
    "path",
    "n",
    "err",
    "TTFT p50",
    "TTFT p95",
    "total p50",
    "total p95",
    "TTFT added (p50)",
    "total added (p50)",
)
BREAKDOWN_COLUMNS = (
    "clients",
    "path",
    "accepted p50",
    "vendor TTFT seen by Parley p50",
    "vendor calls failed",
    "gap p50",
    "gap p95",
    "pieces",
    "last text to done p50",
    "server CPU/reply",
    "server busy",
    "bench busy",
)


def markdown(columns: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    rows = [columns, ["---"] * len(columns), *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def latency_table(rows: Sequence[Row]) -> str:
    baselines = {row.clients: row for row in rows if row.path == "baseline"}
    return markdown(LATENCY_COLUMNS, (_latency(row, baselines.get(row.clients)) for row in rows))


def _latency(row: Row, base: Row | None) -> list[str]:
    cells = [str(row.clients), row.path, str(len(row.outcome.samples))]
    cells += [str(len(row.outcome.errors))]
    cells += [_ms(row.ms(metric, q)) for metric in ("ttft", "total") for q in (0.5, 0.95)]
    if row.path == "baseline" or base is None:
        return [*cells, "", ""]
    return [*cells, _added(row, base, "ttft"), _added(row, base, "total")]


def breakdown_table(rows: Sequence[Row]) -> str:
    return markdown(BREAKDOWN_COLUMNS, (_breakdown(row) for row in rows))


def _breakdown(row: Row) -> list[str]:
    outcome = row.outcome
    parley = row.path != "baseline"
    vendor_ttft = percentile(row.upstream.ttft_ms, 0.5)
    cells = [str(row.clients), row.path, _ms(row.ms("accepted", 0.5)), _ms(vendor_ttft)]
    cells.append(str(row.upstream.failed) if parley else "")
    cells += [_ms(row.ms("gaps", 0.5)), _ms(row.ms("gaps", 0.95)), f"{row.pieces():.0f}"]
    cells.append(_ms(row.ms("closing", 0.5)))
    cpu_per_reply = 1000 * outcome.server_cpu / row.replies() if row.replies() else math.nan
    cells.append(f"{_ms(cpu_per_reply)} ms" if parley else "")
    cells.append(_share(outcome.server_cpu, outcome.wall) if parley else "")
    return [*cells, _share(outcome.client_cpu, outcome.wall)]


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.1f}"


def _share(cpu: float, wall: float) -> str:
    return "" if math.isnan(cpu) or wall <= 0 else f"{100 * cpu / wall:.0f}%"


def _added(row: Row, base: Row, metric: str) -> str:
    mine, theirs = row.ms(metric, 0.5), base.ms(metric, 0.5)
    ratio = f", x{mine / theirs:.1f}" if theirs > 0 else ""
    return f"{mine - theirs:+.1f} ms{ratio}"


def print_errors(rows: Iterable[Row]) -> None:
    for row in rows:
        for error in sorted(set(row.outcome.errors))[:3]:
            print(f"  {row.path} x{row.clients}: {error}", file=sys.stderr)


# -- the whole run ----------------------------------------------------------------------------


async def run_profile(
    options: Options, upstream: Upstream, database_url: str, logs: Path, footprint: Footprint
) -> list[Row]:
    """Start the fake vendor and Parley for one upstream profile and run every scenario."""
    vendor = fake_vendor(upstream, logs)
    async with running(vendor, lambda: accepts_connections(vendor.url)):
        server = parley_server(options, upstream.key, database_url, vendor.url, logs)
        async with (
            running(server, lambda: answers_ready(server.url)),
            clients_for(vendor.url, server, footprint) as clients,
        ):
            return await scenarios(options, upstream, clients, database_url)


async def scenarios(
    options: Options, upstream: Upstream, clients: Clients, database_url: str
) -> list[Row]:
    run_id = secrets.token_hex(3)
    if options.warm_up:
        await warm_up(clients, options, f"bench-{run_id}")
    rows: list[Row] = []
    for scenario in options.scenarios:
        prefix = f"bench-{run_id}.{upstream.key}-{scenario.key}"
        started = time.monotonic()
        outcomes = await run_scenario(clients, options, scenario, prefix, upstream.text)
        print(f"  {scenario.clients} client(s): {time.monotonic() - started:.1f} s", flush=True)
        for path, outcome in outcomes.items():
            calls = await upstream_calls(database_url, f"{prefix}.{path}")
            rows.append(Row(scenario.clients, path, outcome, calls))
    return rows


async def run(options: Options) -> int:
    """Every profile, cleaning up however it ends; returns the number of failed replies."""
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    footprint = Footprint()
    failed = 0
    with logs_folder(options.logs) as folder:
        async with scratch_database(options.postgres_url) as database_url:
            try:
                for upstream in options.upstreams:
                    print(f"upstream: {upstream.label}", flush=True)
                    rows = await run_profile(options, upstream, database_url, folder, footprint)
                    report(upstream, rows)
                    failed += sum(len(row.outcome.errors) for row in rows)
            finally:
                await forget_keys(options.redis_url, footprint)
    return failed


def report(upstream: Upstream, rows: Sequence[Row]) -> None:
    floor = (upstream.words - 1) * upstream.delay_ms
    print(f"\n### Upstream: {upstream.label} (its own pacing alone: {floor:g} ms)\n")
    print(latency_table(rows))
    print("\nWhere the time goes:\n")
    print(breakdown_table(rows))
    print(
        "\nTimes in ms. err: failed or wrong replies. pieces: text chunks per reply."
        " busy: CPU time / wall time of the rounds (100% = one core).\n",
        flush=True,
    )
    print_errors(rows)


def machine() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}, Python {sys.version.split()[0]}"


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    print(f"machine: {machine()}", flush=True)
    started = time.monotonic()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            failed = runner.run(run(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; processes stopped and the database dropped", file=sys.stderr)
        return 130
    print(f"finished in {time.monotonic() - started:.0f} s; machine now: {machine()}")
    if failed:
        print(f"{failed} replies failed or came back wrong", file=sys.stderr)
    return 1 if failed else 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it is with uvicorn[standard]), as Parley's own server uses."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
