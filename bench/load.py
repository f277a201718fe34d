"""The load generator: its own process, driven by the harness over stdin/stdout.

Each line on stdin is one JSON command; each command gets one JSON line back::

    {"op": "prepare", "kind": "ws", "url": "ws://…/ws", "count": 32, ...}
    {"op": "prepare", ..., "urls": ["ws://…:A/ws", "ws://…:B/ws"]}  (round-robin)
    {"op": "fire", "timeout": 60, "offsets": [0.0, 0.013, …], "repeat": 1, "pause_s": 0}
                                           -> {"results": [StreamResult, ...]}
    {"op": "close"}
    {"op": "idle_open", "url": "ws://…/ws", "count": 1000, ...} -> {"open": 1000, ...}
    {"op": "idle_close"}
    {"op": "soak", "url": "ws://…/ws", "streams": 32, "seconds": 600, ...}
    {"op": "quit"}

``prepare`` opens the streams without timing anything (WebSocket: connect,
authenticate, ``start``; HTTP: a TCP connection), ``fire`` starts each at its
offset (none given: all at the same moment), ``repeat`` times in a row, and
times them, ``close`` closes them. Kinds:

* ``ws``: Parley's WebSocket protocol (``message`` -> ``accepted``, ``delta``…,
  ``done``), each message in a new conversation whose ``start`` is not timed;
* ``ws-new``: the same, timed from ``start`` (a new conversation's first reply);
* ``sse``: Parley's ``POST /v1/chat`` with ``"stream": true``;
* ``openai`` / ``anthropic``: the same request straight to the stub (the baseline),
  or to a peer's OpenAI-compatible endpoint.

HTTP is spoken by a small hand-written HTTP/1.1 client, so that the generator's
own cost stays low and the same for Parley's SSE and the baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    ANTHROPIC_MODEL,
    OPENAI_MODEL,
    PROMPT,
    StreamResult,
    TokenClock,
    reply_tokens,
)
from parley.auth.tokens import mint_token

OPEN_CONCURRENCY = 64  # connections opened at once while preparing
DRAIN_SECONDS = 10.0  # reading the end of a response before reusing its connection
Command = dict[str, Any]


def _compression(deflate: bool) -> str | None:
    """Offer permessage-deflate (as browsers do) or nothing."""
    return "deflate" if deflate else None


class StreamError(Exception):
    """A stream that could not be timed; its message becomes the result's error."""


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    return text[:300]


# -- one stream -----------------------------------------------------------------------


class Turn(Protocol):
    async def run(self, expected: list[str]) -> StreamResult: ...

    async def close(self) -> None: ...


@dataclass
class ParleyTally:
    """What a Parley reply's frames told us besides its text."""

    accepted: float | None = None
    done: float | None = None
    status: str = ""
    error: str | None = None


def on_parley_frame(frame: dict[str, Any], clock: TokenClock, tally: ParleyTally) -> bool:
    """Record one WebSocket or SSE frame; ``True`` once the reply is over."""
    now = time.perf_counter()
    kind = frame.get("type")
    if kind == "delta":
        clock.feed(str(frame.get("text", "")), now)
    elif kind == "accepted":
        tally.accepted = now
    elif kind == "done":
        tally.done = now
        tally.status = str(frame.get("status"))
        return True
    elif kind in ("error", "resync"):
        tally.error = f"{kind}: {frame.get('code', '')} {frame.get('message', '')}".strip()
        # A reply's own error is followed by its done; a refused message gets nothing more.
        return kind == "resync" or "reply_id" not in frame
    return False


def parley_result(clock: TokenClock, tally: ParleyTally) -> StreamResult:
    last = clock.arrivals[-1] if clock.arrivals else None
    lag = 1000 * (tally.done - last) if tally.done is not None and last is not None else None
    accepted = 1000 * (tally.accepted - clock.started) if tally.accepted is not None else None
    result = clock.result(
        accepted=None if accepted is None else round(accepted, 3),
        done_lag=None if lag is None else round(lag, 3),
        status=tally.status,
        error=tally.error,
    )
    if result.error is None and result.status != "complete":
        result.error = f"status {result.status or 'missing'}"
    return result


class WsTurn:
    """One authenticated socket. ``ws`` opens a conversation (``start``) before each
    timed message, untimed; ``ws-new`` times ``start`` and the message together."""

    def __init__(self, connection: ClientConnection, agent: str, timed_start: bool) -> None:
        self.connection = connection
        self.agent = agent
        self.timed_start = timed_start
        self.fresh = False  # a conversation is open and has had no message yet
        self.renew = True  # False: later messages continue the same conversation

    @classmethod
    async def open(
        cls, url: str, token: str, agent: str, deflate: bool, timed_start: bool = False
    ) -> WsTurn:
        headers = {"Authorization": f"Bearer {token}"}
        connection = await connect(
            url, additional_headers=headers, max_size=None, compression=_compression(deflate)
        )
        turn = cls(connection, agent, timed_start)
        if not timed_start:
            try:
                await turn.start()
            except BaseException:
                await turn.close()
                raise
        return turn

    async def start(self) -> None:
        """A new conversation; frames of the previous one still on their way are skipped."""
        await self.connection.send(json.dumps({"type": "start", "agent": self.agent}))
        while True:
            frame = json.loads(await self.connection.recv())
            if frame.get("type") == "session":
                self.fresh = True
                return
            if frame.get("type") == "error" and "reply_id" not in frame:
                raise StreamError(f"start refused: {str(frame)[:200]}")

    async def run(self, expected: list[str]) -> StreamResult:
        if not self.timed_start and not self.fresh and self.renew:
            await self.start()  # untimed: every probe is a new conversation
        clock = TokenClock(expected, time.perf_counter())
        if self.timed_start:
            await self.start()
        self.fresh = False
        frame = {"type": "message", "client_id": str(uuid.uuid4()), "text": PROMPT}
        await self.connection.send(json.dumps(frame))
        tally = ParleyTally()
        while not on_parley_frame(json.loads(await self.connection.recv()), clock, tally):
            pass
        return parley_result(clock, tally)

    async def close(self) -> None:
        await self.connection.close()


@dataclass(frozen=True)
class HttpRequest:
    path: str
    body: bytes
    headers: dict[str, str]


class HttpTurn:
    """One kept-open HTTP/1.1 connection carrying one streamed POST."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: HttpRequest,
        kind: str,
        host: str,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.request = request
        self.kind = kind
        self.host = host
        self.unread = False  # the last response's body was not read to its end

    @classmethod
    async def open(cls, url: str, request: HttpRequest, kind: str) -> HttpTurn:
        address = urlsplit(url)
        host, port = address.hostname or "127.0.0.1", address.port or 80
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, request, kind, f"{host}:{port}")

    def request_bytes(self) -> bytes:
        head = [f"POST {self.request.path} HTTP/1.1", f"host: {self.host}"]
        head += [f"{name}: {value}" for name, value in self.request.headers.items()]
        head += ["content-type: application/json", f"content-length: {len(self.request.body)}"]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.request.body

    async def run(self, expected: list[str]) -> StreamResult:
        if self.unread:  # the connection is reused: read the last body's end first
            async with asyncio.timeout(DRAIN_SECONDS):
                async for _ in self.events():
                    pass
            self.unread = False
        clock = TokenClock(expected, time.perf_counter())
        self.writer.write(self.request_bytes())
        status, headers = await self.read_head()
        if status != 200:
            body = await self.reader.read(4096)
            raise StreamError(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        if headers.get("transfer-encoding") != "chunked":
            raise StreamError("expected a chunked event stream")
        if self.kind == "sse":
            tally = ParleyTally()
            self.unread = True
            async for payload in self.events():
                if on_parley_frame(json.loads(payload), clock, tally):
                    break
            return parley_result(clock, tally)
        self.unread = True
        async for payload in self.events():
            if payload == b"[DONE]":
                break
            text, finished = vendor_text(self.kind, json.loads(payload))
            clock.feed(text, time.perf_counter())
            if finished:
                break
        return clock.result(status="")

    async def read_head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip().lower()
        return status, headers

    async def events(self) -> AsyncIterator[bytes]:
        """The ``data:`` payloads of a chunked event stream, as they arrive."""
        buffer = b""
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()
                self.unread = False
                return
            buffer += (await self.reader.readexactly(size + 2))[:-2]
            while (end := buffer.find(b"\n\n")) >= 0:
                event, buffer = buffer[:end], buffer[end + 2 :]
                for line in event.split(b"\n"):
                    if line.startswith(b"data:"):
                        yield line[5:].strip()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def vendor_text(kind: str, event: dict[str, Any]) -> tuple[str, bool]:
    """The text in one OpenAI or Anthropic stream event, and whether the stream ended."""
    if kind == "openai":
        text = "".join(
            str((choice.get("delta") or {}).get("content") or "")
            for choice in event.get("choices", [])
        )
        return text, False
    if event.get("type") == "content_block_delta":
        return str(event["delta"].get("text", "")), False
    return "", event.get("type") == "message_stop"


# -- opening streams ------------------------------------------------------------------


def request_for(command: Command, token: str) -> HttpRequest:
    kind = command["kind"]
    messages = [{"role": "user", "content": PROMPT}]
    if kind == "sse":
        body = {"agent": command["agent"], "message": PROMPT, "stream": True}
        return HttpRequest("/v1/chat", json.dumps(body).encode(), {"authorization": token})
    if kind == "openai":
        key = command.get("api_key")
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body = {
            "model": OPENAI_MODEL,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 1000,
        }
        return HttpRequest("/v1/chat/completions", json.dumps(body).encode(), headers)
    body = {"model": ANTHROPIC_MODEL, "messages": messages, "stream": True, "max_tokens": 1000}
    headers = {"x-api-key": "sk-stub", "anthropic-version": "2023-06-01"}
    return HttpRequest("/v1/messages", json.dumps(body).encode(), headers)


def bearer(command: Command, user: str) -> str:
    return mint_token(command["secret"], user_id=user, name="Bench", ttl_seconds=7200)


def url_for(command: Command, index: int) -> str:
    """Stream ``index``'s server: with ``urls`` (several instances behind one route)
    the streams go to each in turn, so a round splits evenly across them."""
    urls = command.get("urls") or [command["url"]]
    return str(urls[index % len(urls)])


async def open_turn(command: Command, index: int) -> Turn:
    kind, url = command["kind"], url_for(command, index)
    user = f"{command['users']}.{index}"
    if kind in ("ws", "ws-new"):
        deflate = bool(command.get("deflate", True))
        token = bearer(command, user)
        return await WsTurn.open(url, token, command["agent"], deflate, kind == "ws-new")
    token = f"Bearer {bearer(command, user)}" if kind == "sse" else ""
    return await HttpTurn.open(url, request_for(command, token), kind)


async def open_many(command: Command, count: int) -> tuple[list[Turn], list[str]]:
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(index: int) -> Turn:
        async with gate:
            return await open_turn(command, index)

    opened = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    turns = [turn for turn in opened if not isinstance(turn, BaseException)]
    errors = [describe(error) for error in opened if isinstance(error, BaseException)]
    return turns, errors


async def timed(turn: Turn, expected: list[str], limit_s: float) -> StreamResult:
    try:
        async with asyncio.timeout(limit_s):
            return await turn.run(expected)
    except TimeoutError:
        return StreamResult(expected=len(expected), error=f"timed out after {limit_s:g} s")
    except Exception as error:
        return StreamResult(expected=len(expected), error=describe(error))


# -- the generator ----------------------------------------------------------------------


class Generator:
    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.refused: list[str] = []
        self.expected: list[str] = []
        self.idle: list[ClientConnection] = []

    async def handle(self, command: Command) -> dict[str, Any]:
        op = command["op"]
        if op == "prepare":
            return await self.prepare(command)
        if op == "fire":
            return await self.fire(
                float(command["timeout"]),
                offsets=[float(o) for o in command.get("offsets") or []],
                repeat=int(command.get("repeat", 1)),
                pause_s=float(command.get("pause_s", 0.0)),
            )
        if op == "close":
            await self.close()
            return {"closed": True}
        if op == "idle_open":
            return await self.idle_open(command)
        if op == "idle_close":
            return await self.idle_close()
        if op == "soak":
            return await soak(command)
        raise ValueError(f"unknown op {op!r}")

    async def prepare(self, command: Command) -> dict[str, Any]:
        await self.close()
        self.expected = reply_tokens(int(command["tokens"]))
        self.turns, self.refused = await open_many(command, int(command["count"]))
        return {"opened": len(self.turns), "refused": self.refused[:5]}

    async def fire(
        self, limit_s: float, offsets: list[float], repeat: int = 1, pause_s: float = 0.0
    ) -> dict[str, Any]:
        """Every stream, each starting at its offset (seconds; none: all at once) and
        asking ``repeat`` times in a row, ``pause_s`` apart. Results in stream order."""
        started = time.perf_counter()

        async def one(index: int, turn: Turn) -> list[StreamResult]:
            if index < len(offsets):
                await asyncio.sleep(max(0.0, started + offsets[index] - time.perf_counter()))
            out = []
            for attempt in range(repeat):
                if attempt:
                    await asyncio.sleep(pause_s)
                out.append(await timed(turn, self.expected, limit_s))
            return out

        ran = await asyncio.gather(*(one(i, t) for i, t in enumerate(self.turns)))
        wall = time.perf_counter() - started
        refused = [StreamResult(expected=len(self.expected), error=e) for e in self.refused]
        results = [result.to_json() for result in [*(r for rs in ran for r in rs), *refused]]
        return {"results": results, "wall_s": round(wall, 4)}

    async def close(self) -> None:
        turns, self.turns = self.turns, []
        await asyncio.gather(*(turn.close() for turn in turns), return_exceptions=True)

    async def idle_open(self, command: Command) -> dict[str, Any]:
        """``count`` more authenticated sockets that stay open and silent (one ping each)."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        base = len(self.idle)

        async def one(index: int) -> ClientConnection:
            token = bearer(command, f"{command['users']}.{index}")
            async with gate:
                headers = {"Authorization": f"Bearer {token}"}
                connection = await connect(
                    command["url"],
                    additional_headers=headers,
                    ping_interval=None,
                    compression=_compression(bool(command.get("deflate", True))),
                )
                await connection.send('{"type":"ping"}')
                reply = json.loads(await connection.recv())
                if reply.get("type") != "pong":
                    await connection.close()
                    raise StreamError(f"no pong: {reply}")
                return connection

        count = int(command["count"])
        opened = await asyncio.gather(
            *(one(base + i) for i in range(count)), return_exceptions=True
        )
        errors = [describe(e) for e in opened if isinstance(e, BaseException)]
        self.idle += [c for c in opened if not isinstance(c, BaseException)]
        return {"open": len(self.idle), "errors": len(errors), "error_samples": errors[:5]}

    async def idle_close(self) -> dict[str, Any]:
        idle, self.idle = self.idle, []
        gate = asyncio.Semaphore(256)

        async def one(connection: ClientConnection) -> None:
            async with gate:
                await connection.close()

        await asyncio.gather(*(one(c) for c in idle), return_exceptions=True)
        return {"closed": len(idle)}


@dataclass
class SoakTally:
    replies: int = 0
    failed: int = 0
    tokens: int = 0
    lost: int = 0


async def soak(command: Command) -> dict[str, Any]:
    """``streams`` clients asking for replies back to back for ``seconds``.

    Each client starts a new conversation every ``per_conversation`` replies,
    so the prompt (and Parley's history cache) stays small.
    """
    deadline = time.monotonic() + float(command["seconds"])
    expected = reply_tokens(int(command["tokens"]))
    tally = SoakTally()
    errors: list[str] = []

    async def client(index: int) -> None:
        serial = 0
        while time.monotonic() < deadline:
            serial += 1
            sub = {**command, "kind": "ws", "users": f"{command['users']}.{index}"}
            try:
                turn = await open_turn(sub, serial)
                if isinstance(turn, WsTurn):
                    turn.renew = False  # ``per_conversation`` replies in one conversation
            except Exception as error:
                errors.append(describe(error))
                await asyncio.sleep(1)  # back off: the server refused a connection
                continue
            try:
                for _ in range(int(command["per_conversation"])):
                    if time.monotonic() >= deadline:
                        break
                    result = await timed(turn, expected, 120)
                    tally.replies += 1
                    tally.tokens += result.tokens
                    tally.lost += result.lost
                    if not result.ok:
                        tally.failed += 1
                        errors.append(result.error or "lost tokens")
                        break
            finally:
                await turn.close()

    await asyncio.gather(*(client(i) for i in range(int(command["streams"]))))
    return {**tally.__dict__, "error_samples": sorted(set(errors))[:5]}


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve() -> None:
    raise_file_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    generator = Generator()
    try:
        while line := await reader.readline():
            command: Command = json.loads(line)
            if command["op"] == "quit":
                break
            try:
                answer = await generator.handle(command)
            except Exception as error:
                answer = {"generator_error": describe(error)}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        await generator.close()
        await generator.idle_close()


def main() -> None:
    import uvloop

    uvloop.run(serve())


if __name__ == "__main__":
    main()
