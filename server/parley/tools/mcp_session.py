"""One long-lived session per MCP server, shared by every reply that calls its tools.

The SDK's ``Client`` is an async context manager built on anyio task groups,
which must be entered and exited by the same task. So each session is owned
by a task of its own that enters the client, reports it ready, and waits to
be told to stop; calls from any reply task go through the open client.

A server that goes away (a crashed stdio process, a restarted HTTP server)
closes its session. The call that notices gets an error (or, for a tool
without side effects, one transparent retry on a fresh session), and the
next call starts the server again. Starting, calling and stopping are all
bounded in time, so no reply ever hangs on a dead server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, CallToolResult, Implementation, RequestParamsMeta
from mcp_types import Tool as McpToolInfo

from parley.tools.env import Secret, scrub

log = logging.getLogger("parley.tools")

CONNECT_TIMEOUT = 10.0
MAX_LIST_PAGES = 50  # a server whose listing never ends must not hang a reload
CLIENT_INFO = Implementation(name="parley", version="1")
MAX_REASON_CHARS = 200
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StdioServer:
    command: tuple[str, ...]
    env: tuple[tuple[str, Secret], ...] = ()
    cwd: str | None = None
    hidden: tuple[Secret, ...] = ()  # env values, whole and in parts: scrubbed from messages


@dataclass(frozen=True, slots=True)
class HttpServer:
    url: Secret  # an operator's URL may carry a token; it is never shown
    headers: tuple[tuple[str, Secret], ...] = ()
    hidden: tuple[Secret, ...] = ()  # the URL and header values: scrubbed from messages


McpServer = StdioServer | HttpServer


class McpUnavailable(Exception):
    """The server could not be started or reached, or its session closed."""


class McpCallFailed(Exception):
    """The server answered a request with a protocol error (unknown tool, bad params, timeout)."""


@dataclass(slots=True)
class _Live:
    client: Client
    stop: asyncio.Event


@dataclass(eq=False)
class McpConnection:
    """The session with one MCP server, (re)started on demand. ``name`` is its file id."""

    name: str
    server: McpServer
    connect_timeout: float = CONNECT_TIMEOUT
    _live: _Live | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _closed: bool = field(default=False, init=False)

    async def list_tools(self) -> list[McpToolInfo]:
        live = await self._session()
        tools: list[McpToolInfo] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await self._request(live, live.client.list_tools(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return tools
        raise McpCallFailed(f"tools/list returned more than {MAX_LIST_PAGES} pages")

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        read_timeout: float,
        retry_if_closed: bool = False,
        meta: RequestParamsMeta | None = None,
    ) -> CallToolResult:
        """Call ``name``; on a closed session, retry once on a fresh one if ``retry_if_closed``.

        Only a call that is safe to repeat may retry: the closed session may
        have run it before going away.
        """
        for attempt in range(2):
            live = await self._session()
            call = live.client.call_tool(
                name, arguments, read_timeout_seconds=read_timeout, meta=meta
            )
            try:
                return await self._request(live, call)
            except McpUnavailable:
                if attempt or not retry_if_closed:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self._closed = True
        async with self._lock:  # lets a start in progress finish first
            live, self._live = self._live, None
        if live is not None:
            live.stop.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    # -- the session -----------------------------------------------------------

    async def _request(self, live: _Live, request: Awaitable[T]) -> T:
        try:
            return await request
        except MCPError as error:
            if error.code != CONNECTION_CLOSED:
                raise McpCallFailed(self._scrub(error.message)) from None
            await self._discard(live)
            raise McpUnavailable(
                "the server closed the connection (it is restarted on the next call)"
            ) from None
        except Exception as error:  # the session is in an unknown state: start afresh
            await self._discard(live)
            raise McpCallFailed(f"the request failed: {self._reason(error)}") from None

    async def _session(self) -> _Live:
        async with self._lock:  # concurrent callers share one start
            if self._closed:
                raise McpUnavailable("the connection is closed")
            if self._live is None:
                self._live = await self._start()
            return self._live

    async def _discard(self, live: _Live) -> None:
        async with self._lock:
            if self._live is live:
                self._live = None
        live.stop.set()  # its owner task closes the client; aclose() waits for it

    async def _start(self) -> _Live:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(self._own(ready, stop), name=f"mcp:{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            pending: list[asyncio.Future[Any]] = [ready, task]
            await asyncio.wait(
                pending, timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # cancelled while starting: do not leave the server running
            stop.set()
            task.cancel()
            raise
        if ready.done() and ready.exception() is None:
            return _Live(ready.result(), stop)
        ended = task.done()
        task.cancel()
        await asyncio.wait({task})  # the SDK bounds its own shutdown
        error = ready.exception() if ready.done() else None
        if error is not None:
            raise McpUnavailable(f"the server did not start: {self._reason(error)}")
        if ended:
            raise McpUnavailable("the session ended while starting")
        raise McpUnavailable(f"the server did not answer within {self.connect_timeout:g} s")

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Enter the client, hand it over, and exit it in this same task when told to."""
        try:
            async with Client(
                self._target(),
                cache=None,  # every listing is fresh: reloads must see the server's current tools
                read_timeout_seconds=self.connect_timeout,
                client_info=CLIENT_INFO,
            ) as client:
                ready.set_result(client)
                await stop.wait()
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)
            else:
                log.warning("MCP server %s: session ended: %s", self.name, self._reason(error))

    def _target(self) -> StdioServerParameters | Transport:
        server = self.server
        if isinstance(server, StdioServer):
            return StdioServerParameters(
                command=server.command[0],
                args=list(server.command[1:]),
                env={name: value.reveal() for name, value in server.env},
                cwd=server.cwd,
            )
        return _http_transport(server)

    def _reason(self, error: BaseException) -> str:
        while isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]  # anyio wraps the one failure that matters
        text = str(error) or type(error).__name__
        return self._scrub(text)[:MAX_REASON_CHARS]

    def _scrub(self, text: str) -> str:
        """No environment value, header value or URL of the file appears in a message."""
        return scrub(text, self.server.hidden)


@asynccontextmanager
async def _http_transport(server: HttpServer) -> AsyncIterator[Any]:
    """Streamable HTTP with the file's headers. The SDK follows same-origin redirects only."""
    headers = {name: value.reveal() for name, value in server.headers}
    timeout = httpx2.Timeout(30.0, read=300.0)  # the SDK's defaults: a stream may stay open
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(server.url.reveal(), http_client=http) as streams,
    ):
        yield streams
