"""A fake LLM vendor: a real HTTP server speaking OpenAI's and Anthropic's streaming formats.

The providers are exercised end to end (HTTP, SSE parsing, error mapping),
so the tests see what production sees. Tests script replies with :class:`Script`::

    with FakeLLM() as fake:
        fake.enqueue(Script(status=503), Script(chunks=["Hi", " there"]))
        provider = OpenAIProvider("sk-test", fake.base_url)
        ...
        assert fake.requests[-1].body["model"] == "gpt-4o-mini"

Tool calls stream as each vendor streams them, after the script's text::

    Script(tool_calls=[("lookup_order", '{"order_id": "1042"}')])  # tool calls only
    Script(chunks=["Let me check. "], tool_calls=[("a", "{}"), ("b", '{"x": 1}', "call_b")])

and a recorded vendor stream can be replayed byte for byte (to either route)::

    Script(raw_sse=transcripts / "groq-tool-call.sse")

The same scripts answer the named providers' routes: Azure OpenAI's
``/openai/deployments/{deployment}/chat/completions``, Vertex AI's
``…/publishers/anthropic/models/{model}:streamRawPredict`` (Anthropic's
stream) and Bedrock's ``/model/{id}/invoke-with-response-stream``
(Anthropic's events in AWS event-stream frames, see :func:`aws_event`); the
model a script's ``model_filter`` matches is then the one in the path.

``POST /v1/moderations`` answers like OpenAI's moderation endpoint, every
category false except the script's ``flagged`` ones::

    Script(model_filter="omni-moderation-latest", flagged=["violence"])

The fake never honours ``max_tokens``: a script streams all its chunks, like
the servers Parley has to cut off itself.

uvicorn runs the app on its own thread and event loop; everything shared with
the test thread is guarded by one :class:`threading.Condition`.

Standalone, to point a server at by hand: ``python -m tests.support.fake_llm --port 9100``
(the benchmark has its own, cheaper upstream: ``bench/stub.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_CHUNKS = ("Hello", " from", " the", " fake", " model.")
# What OpenAI's omni-moderation reports on (POST /v1/moderations).
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)

# (name, arguments JSON text) or (name, arguments, id); ids default to call_fake_<n>
# (OpenAI) and toolu_fake_<n> (Anthropic), unique for the fake's lifetime.
FakeToolCall = tuple[str, str] | tuple[str, str, str]


@dataclass
class Script:
    """How the fake answers one request.

    ``chunks`` default to :data:`DEFAULT_CHUNKS`, or to no text when the script
    has ``tool_calls`` or ``raw_sse``.

    Tool calls (``tool_calls``) follow the text. OpenAI: the first piece of
    each carries ``index``, ``id``, ``type`` and the name; the arguments
    follow in pieces of ``argument_piece`` characters, call after call (or
    round-robin across calls with ``interleave_tool_calls``), then finish
    ``tool_calls``. Anthropic: a ``tool_use`` block per call with
    ``input_json_delta`` pieces, then stop_reason ``tool_use``. An explicit
    ``finish_reason`` other than "stop" still wins.

    ``raw_sse`` (a path, or the body itself as bytes) replays a recorded
    stream verbatim as the body, an event per write (or ``raw_piece`` bytes
    per write, splitting lines and characters); of the other fields only
    ``status`` and ``delay`` apply to it.
    """

    chunks: list[str] | None = None
    delay: float = 0.0  # seconds between chunks (and tool-call pieces, and raw writes)
    first_delay: float = 0.0  # seconds before the first chunk (after the headers)
    status: int | None = None  # fail with this HTTP status before streaming
    break_after: int | None = None  # drop the connection after this many chunks
    include_usage: bool = True  # OpenAI: send the usage chunk when the client asks for it
    prompt_tokens: int = 11
    completion_tokens: int | None = None  # default: one per chunk
    hold: bool = False  # after the chunks, wait for release() or a client disconnect
    after_release: list[str] = field(default_factory=list)  # with ``hold``: chunks sent after it
    model_filter: str | None = None  # only answer requests for this model
    finish_reason: str = "stop"
    error_message: str = "scripted failure"
    error_body: str | None = None  # with ``status``: this plain-text body instead of JSON
    end_delay: float = 0.0  # seconds between the last event and the end of the body
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    argument_piece: int = 5  # characters of arguments per streamed piece
    interleave_tool_calls: bool = False  # OpenAI: parallel calls' pieces alternate
    raw_sse: str | os.PathLike[str] | bytes | None = None
    raw_piece: int | None = None  # bytes per write of ``raw_sse`` (default: one event)
    headers: dict[str, str] = field(default_factory=dict)  # with ``status``: e.g. retry-after
    # /v1/moderations: the categories reported as flagged (only ``status`` and
    # ``first_delay`` apply there besides).
    flagged: list[str] = field(default_factory=list)

    @property
    def text_chunks(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        return [] if self.tool_calls or self.raw_sse is not None else list(DEFAULT_CHUNKS)

    @property
    def output_tokens(self) -> int:
        """Default: one per text chunk and one per tool call."""
        if self.completion_tokens is not None:
            return self.completion_tokens
        return len(self.text_chunks) + len(self.after_release) + len(self.tool_calls)

    def finish_for(self, tool_finish: str) -> str:
        """The finish reason, ``tool_finish`` when the script calls tools and set none."""
        return (
            tool_finish if self.tool_calls and self.finish_reason == "stop" else self.finish_reason
        )


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    client_port: int = 0  # the same port again means a kept-alive connection
    query: dict[str, str] = field(default_factory=dict)
    raw_path: str = ""  # as sent, percent-encoding and all (what a signature covers)
    raw_body: bytes = b""
    path_model: str = ""  # the deployment or model a URL names (Azure, Bedrock, Vertex)

    @property
    def model(self) -> str:
        return self.path_model or str(self.body.get("model", ""))


class AbortStream(Exception):
    """Raised inside a response to make uvicorn drop the connection mid-stream."""


class FakeLLM:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, default: Script | None = None):
        self._default = default or Script()
        self._state = threading.Condition()
        self._queue: list[Script] = []
        self._requests: list[RecordedRequest] = []
        self._embeddings_seen: list[dict[str, Any]] = []  # POST /v1/embeddings bodies
        self._embedding_failures = 0
        self._disconnects = 0
        self._holds: list[asyncio.Event] = []
        self._releases = 0  # release() calls so far: a stream that reaches its hold
        # after a release it started before does not wait (its client may see the
        # last chunk, and release it, before the stream gets to the hold)
        self._call_numbers = itertools.count(1)  # tool-call ids; used on the server thread only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._socket = _listen(host, port)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeLLM:
        config = uvicorn.Config(
            self._app(),
            loop="asyncio",
            lifespan="on",
            log_level="warning",
            access_log=False,
            log_config=None,  # leave logging to the test runner; aborts log an error
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the fake LLM server did not start")
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.release()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        """For ``OpenAIProvider(base_url=...)`` and ``OPENAI_BASE_URL`` (with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting and inspection (called from the test thread) ---------------

    def enqueue(self, *scripts: Script) -> None:
        with self._state:
            self._queue.extend(scripts)

    def reset(self) -> None:
        """Forget scripts and recorded requests; release held streams."""
        self.release()
        with self._state:
            self._queue.clear()
            self._requests.clear()
            self._disconnects = 0

    def release(self) -> None:
        """Let every held stream finish (also one about to hold)."""
        with self._state:
            holds, self._holds = self._holds, []
            self._releases += 1
        if self._loop is not None:
            for hold in holds:
                self._loop.call_soon_threadsafe(hold.set)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state:
            return list(self._requests)

    @property
    def pending_scripts(self) -> int:
        with self._state:
            return len(self._queue)

    @property
    def disconnects(self) -> int:
        """Streams the client closed before they ended."""
        with self._state:
            return self._disconnects

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        return self._wait_for(lambda: len(self._requests) >= count, timeout, "requests") or []

    def wait_for_disconnects(self, count: int, timeout: float = 5.0) -> None:
        self._wait_for(lambda: self._disconnects >= count, timeout, "disconnects")

    def wait_for_held(self, count: int, timeout: float = 5.0) -> None:
        self._wait_for(lambda: len(self._holds) >= count, timeout, "held streams")

    def _wait_for(
        self, ready: Callable[[], bool], timeout: float, what: str
    ) -> list[RecordedRequest] | None:
        with self._state:
            if not self._state.wait_for(ready, timeout=timeout):
                raise TimeoutError(f"fake LLM: timed out waiting for {what}")
            return list(self._requests)

    # -- the HTTP side (runs on the server thread) ----------------------------

    def _app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            yield

        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/moderations", self._moderation, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route(
                    "/openai/deployments/{deployment}/chat/completions",
                    self._openai,
                    methods=["POST"],
                ),
                Route(
                    "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/"
                    "{model}:streamRawPredict",
                    self._anthropic,
                    methods=["POST"],
                ),
                Route(
                    "/model/{model}/invoke-with-response-stream", self._bedrock, methods=["POST"]
                ),
            ],
            lifespan=lifespan,
        )

    async def _take(self, request: Request) -> tuple[dict[str, Any], Script]:
        raw = await request.body()
        body = json.loads(raw)
        port = request.client.port if request.client else 0
        params = request.path_params
        recorded = RecordedRequest(
            request.url.path,
            body,
            dict(request.headers),
            port,
            query=dict(request.query_params),
            raw_path=request.scope["raw_path"].decode(),
            raw_body=raw,
            path_model=str(params.get("deployment") or params.get("model") or ""),
        )
        with self._state:
            self._requests.append(recorded)
            script = next(
                (s for s in self._queue if s.model_filter in (None, recorded.model)), None
            )
            if script is not None:
                self._queue.remove(script)
            self._state.notify_all()
        return body, script or self._default

    async def _openai(self, request: Request) -> Response:
        body, script = await self._take(request)
        if script.status is not None and script.error_body is not None:
            return Response(script.error_body, status_code=script.status, media_type="text/plain")
        if script.status is not None:
            error = {"message": script.error_message, "type": "fake_error", "code": None}
            return JSONResponse({"error": error}, script.status, headers=script.headers)
        if script.raw_sse is not None:
            return self._raw(script)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = self._openai_events(script, str(body.get("model")), wants_usage)
        return StreamingResponse(self._guard(events), media_type="text/event-stream")

    async def _anthropic(self, request: Request) -> Response:
        body, script = await self._take(request)
        if script.status is not None and script.error_body is not None:
            return Response(script.error_body, status_code=script.status, media_type="text/plain")
        if script.status is not None:
            error = {"type": _anthropic_error_type(script.status), "message": script.error_message}
            return JSONResponse({"type": "error", "error": error}, script.status, script.headers)
        if script.raw_sse is not None:
            return self._raw(script)
        events = self._anthropic_events(
            script, str(body.get("model") or request.path_params.get("model"))
        )
        return StreamingResponse(self._guard(events), media_type="text/event-stream")

    async def _bedrock(self, request: Request) -> Response:
        """Anthropic's events, each in a ``chunk`` frame, as Bedrock streams them."""
        _, script = await self._take(request)
        if script.status is not None:
            return JSONResponse({"message": script.error_message}, script.status, script.headers)
        if script.raw_sse is not None:
            return self._raw(script)
        model = str(request.path_params["model"])

        async def frames() -> AsyncIterator[bytes]:
            async for text in self._anthropic_events(script, model):
                data = text.split("data: ", 1)[1].strip()
                payload = {"bytes": base64.b64encode(data.encode()).decode()}
                yield aws_event(BEDROCK_CHUNK, json.dumps(payload).encode())

        return StreamingResponse(self._guard(frames()), media_type=AWS_EVENT_STREAM)

    async def _moderation(self, request: Request) -> Response:
        body, script = await self._take(request)
        if script.first_delay:
            await asyncio.sleep(script.first_delay)
        if script.status is not None:
            error = {"message": script.error_message, "type": "fake_error", "code": None}
            return JSONResponse({"error": error}, status_code=script.status)
        names = dict.fromkeys([*MODERATION_CATEGORIES, *script.flagged])
        result = {
            "flagged": bool(script.flagged),
            "categories": {name: name in script.flagged for name in names},
            "category_scores": {name: 0.99 if name in script.flagged else 0.01 for name in names},
        }
        model = str(body.get("model") or "omni-moderation-latest")
        return JSONResponse({"id": "modr-fake", "model": model, "results": [result]})

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """Bodies of ``POST /v1/embeddings``, kept apart from the chat ``requests``
        (and not cleared by ``reset``: ingestion embeds while a server starts)."""
        with self._state:
            return list(self._embeddings_seen)

    def fail_embeddings(self, times: int) -> None:
        """Answer the next ``times`` embedding requests with HTTP 500."""
        with self._state:
            self._embedding_failures = times

    async def _embeddings(self, request: Request) -> Response:
        """OpenAI's embeddings: deterministic vectors from the texts' character trigrams,
        so texts sharing spelling are near (and "pasword" is near "password", which
        full-text search cannot see)."""
        body = json.loads(await request.body())
        with self._state:
            self._embeddings_seen.append(body)
            failing = self._embedding_failures
            self._embedding_failures = max(failing - 1, 0)
        if failing:
            error = {"message": "scripted embeddings failure", "type": "fake_error"}
            return JSONResponse({"error": error}, status_code=500)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = int(body.get("dimensions") or 1536)
        data = [
            {"object": "embedding", "index": i, "embedding": trigram_vector(text, dimensions)}
            for i, text in enumerate(texts)
        ]
        tokens = sum(len(text.split()) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        answer = {"object": "list", "data": data, "model": body["model"], "usage": usage}
        return JSONResponse(answer)

    def _raw(self, script: Script) -> Response:
        """The recorded body of ``script.raw_sse``, as it was (status 200)."""
        assert script.raw_sse is not None
        raw = script.raw_sse
        body = raw if isinstance(raw, bytes) else Path(raw).read_bytes()
        pieces = _raw_pieces(body, script.raw_piece)

        async def replay() -> AsyncIterator[bytes]:
            for index, piece in enumerate(pieces):
                if index and script.delay:
                    await asyncio.sleep(script.delay)
                yield piece

        return StreamingResponse(self._guard(replay()), media_type="text/event-stream")

    def _call_ids(self, script: Script, prefix: str) -> list[tuple[str, str, str]]:
        """(id, name, arguments) for each scripted call."""
        calls = []
        for call in script.tool_calls:
            ident = call[2] if len(call) == 3 else f"{prefix}_{next(self._call_numbers)}"
            calls.append((ident, call[0], call[1]))
        return calls

    async def _openai_events(
        self, script: Script, model: str, wants_usage: bool
    ) -> AsyncIterator[str]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n"

        yield chunk(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        async for text in self._paced(script):
            yield chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
        for pieces in _openai_tool_pieces(self._call_ids(script, "call_fake"), script):
            if script.delay:
                await asyncio.sleep(script.delay)
            delta = {"tool_calls": pieces}
            yield chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        finish = script.finish_for("tool_calls")
        yield chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
        if wants_usage and script.include_usage:
            usage = {
                "prompt_tokens": script.prompt_tokens,
                "completion_tokens": script.output_tokens,
                "total_tokens": script.prompt_tokens + script.output_tokens,
            }
            yield chunk([], usage=usage)
        yield "data: [DONE]\n\n"
        if script.end_delay:
            await asyncio.sleep(script.end_delay)

    async def _anthropic_events(self, script: Script, model: str) -> AsyncIterator[str]:
        def event(kind: str, **payload: Any) -> str:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n"

        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": script.prompt_tokens, "output_tokens": 1},
        }
        yield event("message_start", message=message)
        block = 0
        if script.text_chunks or not script.tool_calls:
            yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
            yield event("ping")
            async for text in self._paced(script):
                delta = {"type": "text_delta", "text": text}
                yield event("content_block_delta", index=0, delta=delta)
            yield event("content_block_stop", index=0)
            block = 1
        for ident, name, arguments in self._call_ids(script, "toolu_fake"):
            use = {"type": "tool_use", "id": ident, "name": name, "input": {}}
            yield event("content_block_start", index=block, content_block=use)
            for piece in ["", *_split(arguments, script.argument_piece)]:  # the API starts with ""
                if script.delay:
                    await asyncio.sleep(script.delay)
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield event("content_block_delta", index=block, delta=delta)
            yield event("content_block_stop", index=block)
            block += 1
        finish = script.finish_for("tool_use")
        stop_reason = "end_turn" if finish == "stop" else finish
        yield event(
            "message_delta",
            delta={"stop_reason": stop_reason, "stop_sequence": None},
            usage={"output_tokens": script.output_tokens},
        )
        yield event("message_stop")
        if script.end_delay:
            await asyncio.sleep(script.end_delay)

    async def _paced(self, script: Script) -> AsyncIterator[str]:
        """The script's chunks with its delays, break and hold applied."""
        chunks = script.text_chunks
        with self._state:
            releases_at_start = self._releases
        for index, text in enumerate(chunks):
            if script.break_after is not None and index >= script.break_after:
                raise AbortStream(f"scripted break after {index} chunks")
            pause = script.first_delay if index == 0 else script.delay
            if pause:
                await asyncio.sleep(pause)
            yield text
        if script.break_after is not None and script.break_after <= len(chunks):
            raise AbortStream("scripted break after the last chunk")
        if script.hold:
            hold = asyncio.Event()
            with self._state:
                if self._releases > releases_at_start:
                    hold.set()  # released while its last chunk was on the way
                else:
                    self._holds.append(hold)
                    self._state.notify_all()
            await hold.wait()
            for text in script.after_release:
                yield text

    async def _guard(self, events: AsyncIterator[str | bytes]) -> AsyncIterator[str | bytes]:
        """Count streams the client abandoned (Starlette cancels us on disconnect)."""
        finished = False
        try:
            async for text in events:
                yield text
            finished = True
        finally:
            if not finished:
                with self._state:
                    self._disconnects += 1
                    self._state.notify_all()


def _listen(host: str, port: int) -> socket.socket:
    # Bound and listening before uvicorn starts, so the port is known at once
    # and early connections wait in the backlog instead of being refused.
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only
    # when the listening socket's ``proto`` says TCP, and without it a request sent
    # on a kept-alive connection waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(size, 1))]


def _openai_tool_pieces(
    calls: list[tuple[str, str, str]], script: Script
) -> Iterator[list[dict[str, Any]]]:
    """Each chunk's ``delta.tool_calls``: a call's head, then its argument pieces."""
    streams = []
    for index, (ident, name, arguments) in enumerate(calls):
        head = {"index": index, "id": ident, "type": "function"}
        pieces = [{**head, "function": {"name": name, "arguments": ""}}]
        for part in _split(arguments, script.argument_piece):
            pieces.append({"index": index, "function": {"arguments": part}})
        streams.append(pieces)
    if script.interleave_tool_calls:
        ordered = (p for group in itertools.zip_longest(*streams) for p in group if p)
    else:
        ordered = (piece for pieces in streams for piece in pieces)
    for piece in ordered:
        yield [piece]


def _raw_pieces(body: bytes, size: int | None) -> list[bytes]:
    """The body in writes: ``size`` bytes each, or one event (up to its blank line) each."""
    if size is not None:
        return [body[i : i + size] for i in range(0, len(body), max(size, 1))]
    pieces: list[bytes] = []
    current: list[bytes] = []
    for line in body.splitlines(keepends=True):
        current.append(line)
        if not line.strip():  # the blank line that ends an event
            pieces.append(b"".join(current))
            current.clear()
    if current:
        pieces.append(b"".join(current))
    return pieces


AWS_EVENT_STREAM = "application/vnd.amazon.eventstream"
BEDROCK_CHUNK = {
    ":event-type": "chunk",
    ":content-type": "application/json",
    ":message-type": "event",
}


def aws_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (lengths, CRC), string headers, payload, CRC."""
    encoded = b"".join(
        bytes([len(name.encode())])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _anthropic_error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI/Anthropic streaming API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--words", type=int, default=40, help="words per reply")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between words")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    chunks = [("" if i == 0 else " ") + f"word{i}" for i in range(args.words)]
    fake = FakeLLM(host=args.host, port=args.port, default=Script(chunks=chunks, delay=args.delay))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with fake:
        print(
            f"fake LLM on http://{args.host}:{fake.port}/v1 (OpenAI) and "
            f"http://{args.host}:{fake.port} (Anthropic)",
            flush=True,
        )
        stopped.wait()


if __name__ == "__main__":
    main()


def trigram_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector counting the text's lower-case character trigrams, hashed into
    ``dimensions`` buckets (crc32: the same on every run and platform)."""
    vector = [0.0] * dimensions
    for word in "".join(c if c.isalnum() else " " for c in text.lower()).split():
        padded = f" {word} "
        for i in range(len(padded) - 2):
            vector[zlib.crc32(padded[i : i + 3].encode()) % dimensions] += 1.0
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]
