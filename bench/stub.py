"""The stub upstream: OpenAI- and Anthropic-compatible streaming, as cheap as possible.

Run as its own process (the harness starts it)::

    python -m bench.stub --port 9100 --tokens 64 --interval-ms 20

* ``POST /v1/chat/completions`` (OpenAI Chat Completions, ``stream: true``, usage
  chunk when ``stream_options.include_usage``) and ``POST /v1/messages``
  (Anthropic Messages events, usage in ``message_start`` and ``message_delta``);
* every reply is ``--tokens`` tokens (see :func:`bench.common.token`), the first
  right after the headers, the next ones ``--interval-ms`` apart on a fixed
  schedule (token ``k`` is due at ``start + k * interval``: no drift);
* ``PUT /bench/profile`` ``{"tokens": 64, "interval_ms": 5}`` switches the profile;
  ``GET /bench/stats`` reports what was served and how late tokens were written
  (``late_p99_ms``: the stub itself falling behind; ``?samples=1`` adds every
  token's lateness), ``?reset=1`` starts afresh.

It is a hand-written HTTP/1.1 server (keep-alive, chunked responses, TCP_NODELAY) on
uvloop, so that its own cost per token stays far below Parley's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from bench.common import PROMPT_TOKENS, Profile, percentile, token

MAX_HEADER_BYTES = 65536
LATE_SAMPLES = 200_000  # keep at most this many lateness samples between resets


@dataclass
class Stats:
    requests: int = 0
    completed: int = 0
    aborted: int = 0
    tokens: int = 0
    active: int = 0
    late: list[float] = field(default_factory=list)  # ms behind schedule, per token

    def report(self, samples: bool = False) -> dict[str, Any]:
        extra = {"late_ms": [round(value, 2) for value in self.late]} if samples else {}
        return {
            **extra,
            "requests": self.requests,
            "completed": self.completed,
            "aborted": self.aborted,
            "tokens": self.tokens,
            "active": self.active,
            "late_p50_ms": percentile(self.late, 0.5),
            "late_p99_ms": percentile(self.late, 0.99),
            "late_max_ms": max(self.late, default=0.0),
        }


@dataclass
class Stub:
    profile: Profile
    stats: Stats = field(default_factory=Stats)


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def openai_event(model: str, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    payload = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
        **extra,
    }
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def anthropic_event(kind: str, **payload: Any) -> bytes:
    body = json.dumps({"type": kind, **payload}, separators=(",", ":")).encode()
    return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


class Format:
    """How one vendor frames the head, each token and the tail of a reply."""

    def __init__(self, model: str, tokens: int) -> None:
        self.model = model
        self.tokens = tokens

    def head(self) -> bytes:
        raise NotImplementedError

    def text(self, piece: str) -> bytes:
        raise NotImplementedError

    def tail(self) -> bytes:
        raise NotImplementedError


class OpenAIFormat(Format):
    def __init__(self, model: str, tokens: int, usage: bool) -> None:
        super().__init__(model, tokens)
        self.usage = usage

    def head(self) -> bytes:
        delta = {"role": "assistant", "content": ""}
        return openai_event(self.model, [{"index": 0, "delta": delta, "finish_reason": None}])

    def text(self, piece: str) -> bytes:
        choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        return openai_event(self.model, [choice])

    def tail(self) -> bytes:
        out = openai_event(self.model, [{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if self.usage:
            usage = {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": self.tokens,
                "total_tokens": PROMPT_TOKENS + self.tokens,
            }
            out += openai_event(self.model, [], usage=usage)
        return out + b"data: [DONE]\n\n"


class AnthropicFormat(Format):
    def head(self) -> bytes:
        message: dict[str, Any] = {
            "id": "msg_stub",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
        }
        block = {"type": "text", "text": ""}
        return (
            anthropic_event("message_start", message=message)
            + anthropic_event("content_block_start", index=0, content_block=block)
            + anthropic_event("ping")
        )

    def text(self, piece: str) -> bytes:
        delta = {"type": "text_delta", "text": piece}
        return anthropic_event("content_block_delta", index=0, delta=delta)

    def tail(self) -> bytes:
        delta = {"stop_reason": "end_turn", "stop_sequence": None}
        return (
            anthropic_event("content_block_stop", index=0)
            + anthropic_event("message_delta", delta=delta, usage={"output_tokens": self.tokens})
            + anthropic_event("message_stop")
        )


class Reply:
    """One streamed reply on a connection, driven by timer callbacks (no task per reply)."""

    def __init__(
        self,
        stub: Stub,
        transport: asyncio.Transport,
        form: Format,
        done: Callable[[], None],
    ) -> None:
        self.stub = stub
        self.transport = transport
        self.form = form
        self.done = done
        self.loop = asyncio.get_running_loop()
        self.interval = stub.profile.interval_ms / 1000
        self.index = 0
        self.started = self.loop.time()  # schedules on the loop's clock (1 ms steps)
        self.started_exact = time.perf_counter()  # measures lateness precisely
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.stub.stats.active += 1
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        head += b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        self.transport.write(head + chunk(self.form.head()))
        self.tick()

    def tick(self) -> None:
        self.timer = None
        if self.transport.is_closing():
            self.finish(aborted=True)
            return
        late = time.perf_counter() - (self.started_exact + self.index * self.interval)
        stats = self.stub.stats
        if len(stats.late) < LATE_SAMPLES:
            stats.late.append(max(0.0, 1000 * late))
        data = self.form.text(token(self.index))
        self.index += 1
        stats.tokens += 1
        if self.index >= self.form.tokens:
            self.transport.write(chunk(data) + chunk(self.form.tail()) + b"0\r\n\r\n")
            self.finish(aborted=False)
            return
        self.transport.write(chunk(data))
        self.timer = self.loop.call_at(self.started + self.index * self.interval, self.tick)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.finish(aborted=True)

    def finish(self, *, aborted: bool) -> None:
        stats = self.stub.stats
        stats.active -= 1
        if aborted:
            stats.aborted += 1
        else:
            stats.completed += 1
        self.timer = None
        self.done()


class Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; one request at a time per connection."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.reply: Reply | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None:
            self.reply.cancel()
            self.reply = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.reply is None and self.transport is not None:
            request = self.take_request()
            if request is None:
                return
            self.handle(*request)

    def take_request(self) -> tuple[str, str, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self.respond(431, {"error": "headers too large"}, close=True)
            return None
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buffer) < end + 4 + length:
            return None
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        return method, target, body

    def handle(self, method: str, target: str, body: bytes) -> None:
        path, _, query = target.partition("?")
        if method == "POST" and path in ("/v1/chat/completions", "/v1/messages"):
            self.stream(path, json.loads(body or b"{}"))
        elif method == "PUT" and path == "/bench/profile":
            raw = json.loads(body)
            self.stub.profile = Profile(int(raw["tokens"]), float(raw["interval_ms"]))
            self.respond(200, {"profile": self.stub.profile.name})
        elif method == "GET" and path == "/bench/stats":
            self.respond(200, self.stub.stats.report(samples="samples=1" in query))
            if "reset=1" in query:
                self.stub.stats = Stats(active=self.stub.stats.active)
        elif method == "GET" and path == "/health":
            self.respond(200, {"ok": True})
        else:
            self.respond(404, {"error": f"no route {method} {path}"})

    def stream(self, path: str, request: dict[str, Any]) -> None:
        assert self.transport is not None
        self.stub.stats.requests += 1
        model, tokens = str(request.get("model", "")), self.stub.profile.tokens
        form: Format
        if path == "/v1/messages":
            form = AnthropicFormat(model, tokens)
        else:
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            form = OpenAIFormat(model, tokens, usage)
        self.reply = Reply(self.stub, self.transport, form, self.reply_done)
        self.reply.start()

    def reply_done(self) -> None:
        self.reply = None
        if self.buffer and self.transport is not None and not self.transport.is_closing():
            self.data_received(b"")  # a pipelined request waited behind the reply

    def respond(self, status: int, payload: dict[str, Any], *, close: bool = False) -> None:
        assert self.transport is not None
        body = json.dumps(payload).encode()
        head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(body)}\r\n\r\n"
        self.transport.write(head.encode() + body)
        if close:
            self.transport.close()


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


async def serve(host: str, port: int, profile: Profile) -> None:
    stub = Stub(profile)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    server = await loop.create_server(lambda: Connection(stub), sock=listen(host, port))
    print(f"stub listening on http://{host}:{port} ({profile.name})", flush=True)
    async with server:
        await stopped.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Stub OpenAI/Anthropic streaming upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, Profile(args.tokens, args.interval_ms)))


if __name__ == "__main__":
    main()
