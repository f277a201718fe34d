"""The floor: the least a server can do and keep Parley's promises, on Parley's stack.

Run as its own process (the harness starts it for ``--peer floor``)::

    python -m bench.floor --port 9200 --stub-url http://127.0.0.1:9100 \\
        --database-url postgresql://… --redis-url redis://… --secret …

It serves OpenAI's ``POST /v1/chat/completions`` stream, and for each request
does only what no server that keeps Parley's promises can skip, with the
libraries Parley uses (uvicorn with httptools and uvloop, aiohttp to the
vendor, asyncpg, hiredis through Parley's shared Redis connection):

* verify the caller's JWT (HS256, ``exp`` and ``sub`` required);
* commit the user's message to Postgres before anything is asked of the model
  (a turn the client was told about survives a crash);
* read the vendor's stream, parse every event, and write each piece of text to
  the reply's Redis Stream before the client sees it (a reply resumes on any
  instance); the writes of all replies share one script call per round trip,
  as Parley's appender does;
* commit the reply and its usage to Postgres at the end, then close the stream.

Nothing else: no sessions, agents, rules, tools, budget, rate limits, metrics,
traces or logs. What it costs is the floor under Parley's figures on this
machine; what Parley costs above it is Parley's own (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import asyncpg
import jwt
import uvicorn
from redis.asyncio import ConnectionPool

from parley.storage.multiplex import Multiplexer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_messages (
    id uuid PRIMARY KEY,
    reply_id uuid NOT NULL,
    user_id text NOT NULL,
    role text NOT NULL,
    text text NOT NULL,
    prompt_tokens integer,
    completion_tokens integer,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = (
    "INSERT INTO floor_messages (id, reply_id, user_id, role, text, prompt_tokens,"
    " completion_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
# KEYS: one stream per frame (a key may repeat); ARGV: the frames, in order.
APPEND = """
for i = 1, #KEYS do
  redis.call('XADD', KEYS[i], '*', 'f', ARGV[i])
end
return #KEYS
"""
REQUIRED = ["exp", "sub"]  # claims every caller's token must carry
EVENT_STREAM = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class Frames:
    """Every reply's frames, written to Redis one batch per round trip."""

    def __init__(self, redis: Multiplexer) -> None:
        self._redis = redis
        self._sha = hashlib.sha1(APPEND.encode()).hexdigest()
        self._waiting: list[tuple[str, str, asyncio.Future[None]]] = []
        self._sending: asyncio.Task[None] | None = None

    async def load(self) -> None:
        await self._redis.execute("SCRIPT", "LOAD", APPEND)

    def append(self, key: str, frame: str) -> asyncio.Future[None]:
        """Resolves once ``frame`` is stored."""
        written = asyncio.get_running_loop().create_future()
        self._waiting.append((key, frame, written))
        if self._sending is None:
            self._sending = asyncio.create_task(self._send())
        return written

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                keys = [key for key, _, _ in batch]
                frames = [frame for _, frame, _ in batch]
                try:
                    await self._redis.execute("EVALSHA", self._sha, len(keys), *keys, *frames)
                except Exception as error:
                    for _, _, written in batch:
                        written.set_exception(error)
                    continue
                for _, _, written in batch:
                    written.set_result(None)
        finally:
            self._sending = None


class Floor:
    """The ASGI application."""

    def __init__(self, stub_url: str, database_url: str, redis_url: str, secret: str) -> None:
        self.stub_url = stub_url.rstrip("/")
        self.database_url = database_url
        self.redis_url = redis_url
        self.secret = secret
        self._exits = AsyncExitStack()
        self.pool: asyncpg.Pool
        self.http: aiohttp.ClientSession
        self.frames: Frames

    async def start(self) -> None:
        # As Parley's: a pool of 10, and no cap on connections to the vendor.
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=10)
        self._exits.push_async_callback(self.pool.close)
        await self.pool.execute(SCHEMA)
        vendor = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.http = await self._exits.enter_async_context(vendor)
        redis = Multiplexer(ConnectionPool.from_url(self.redis_url))
        self._exits.push_async_callback(redis.aclose)
        self.frames = Frames(redis)
        await self.frames.load()

    async def stop(self) -> None:
        await self._exits.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] != "http":
            return
        elif scope["path"] == "/health":
            await respond(send, 200, b"ok")
        elif scope["path"] == "/v1/chat/completions" and scope["method"] == "POST":
            await self.chat(scope, receive, send)
        else:
            await respond(send, 404, b"not found")

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        user_id = self.user_of(scope)
        if user_id is None:
            await respond(send, 401, b"a valid bearer token is required")
            return
        request = json.loads(await read_body(receive))
        text = str(request["messages"][-1]["content"])
        reply_id = uuid.uuid4()
        await self.pool.execute(INSERT, uuid.uuid4(), reply_id, user_id, "user", text, None, None)
        upstream = {**request, "stream": True, "stream_options": {"include_usage": True}}
        async with self.http.post(f"{self.stub_url}/v1/chat/completions", json=upstream) as got:
            await send({"type": "http.response.start", "status": 200, "headers": EVENT_STREAM})
            parts, usage = await self.relay(got, f"floor:{reply_id}", send)
        await self.pool.execute(
            INSERT,
            uuid.uuid4(),
            reply_id,
            user_id,
            "assistant",
            "".join(parts),
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
        )
        await self.frames.append(f"floor:{reply_id}", '{"type":"done"}')
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def relay(
        self, upstream: aiohttp.ClientResponse, stream: str, send: Send
    ) -> tuple[list[str], dict[str, Any]]:
        """Each piece of text: parsed, stored in Redis, then sent on."""
        parts: list[str] = []
        usage: dict[str, Any] = {}
        async for line in upstream.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            event = json.loads(line[6:])
            usage = event.get("usage") or usage
            for choice in event.get("choices") or ():
                piece = (choice.get("delta") or {}).get("content")
                if not piece:
                    continue
                parts.append(piece)
                await self.frames.append(stream, json.dumps({"type": "delta", "text": piece}))
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                body = b"data: " + json.dumps(chunk).encode() + b"\n\n"
                await send({"type": "http.response.body", "body": body, "more_body": True})
        return parts, usage

    def user_of(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"authorization" and value.startswith(b"Bearer "):
                try:
                    claims = jwt.decode(
                        value[7:], self.secret, algorithms=["HS256"], options={"require": REQUIRED}
                    )
                except jwt.InvalidTokenError:
                    return None
                return str(claims["sub"])
        return None


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stub-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--secret", required=True, help="the HS256 key of callers' JWTs")
    args = parser.parse_args()
    app = Floor(args.stub_url, args.database_url, args.redis_url, args.secret)
    uvicorn.run(app, host="127.0.0.1", port=args.port, http="httptools", log_level="warning")


if __name__ == "__main__":
    main()
