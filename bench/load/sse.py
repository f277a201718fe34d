"""Streamed POSTs over kept-open HTTP/1.1 connections: Parley's ``POST /v1/chat`` with
``"stream": true``, and the same request straight to the stub (the baseline) or to a
peer's OpenAI-compatible endpoint.

The client is hand-written so that the generator's own cost stays low and the
same for Parley's SSE and the baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.common import ANTHROPIC_MODEL, OPENAI_MODEL, PROMPT, StreamResult, TokenClock
from bench.load.tally import ParleyTally, StreamError, on_parley_frame, parley_result, vendor_text

DRAIN_SECONDS = 10.0  # reading the end of a response before reusing its connection


@dataclass(frozen=True)
class HttpRequest:
    path: str
    body: bytes
    headers: dict[str, str]


def request_for(command: dict[str, Any], token: str) -> HttpRequest:
    """The POST for the command's ``kind``: ``sse`` (Parley, ``token`` its authorization),
    ``openai`` (with the command's ``api_key``, for a peer) or ``anthropic``."""
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
        self.unread = True
        if self.kind == "sse":
            return await self.parley_stream(clock)
        return await self.vendor_stream(clock)

    async def parley_stream(self, clock: TokenClock) -> StreamResult:
        tally = ParleyTally()
        async for payload in self.events():
            if on_parley_frame(json.loads(payload), clock, tally):
                break
        return parley_result(clock, tally)

    async def vendor_stream(self, clock: TokenClock) -> StreamResult:
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
