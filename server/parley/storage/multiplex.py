"""Many callers' Redis commands in flight together on one connection.

redis-py runs one command per pooled connection at a time: a call borrows a
connection, packs its command in Python, writes it, waits for the answer and
hands the connection back, through layers of retries, timeouts and
observability hooks: 126 to 390 µs of CPU per command here, against 15 to
160 µs for the same command on a shared connection (docs/performance.md).
A reply runs a handful of scripts on the way to its first token and to its
end (open, budget, close, session, history), so the difference is paid on
every message.

Redis answers one connection's commands in the order it received them, so
callers can share a connection: each one queues a future and writes its
command, and the connection's protocol hands the answers out in the same
order as hiredis parses them. The connection is opened as the pool's are
(address or Unix socket, TLS context, user, database), and redis-py's
:class:`Retry` retries, with its backoff, a call that could not be sent.

Only single commands go this way (scripts, mostly): a blocking read would
hold up every caller behind it, and ``WATCH`` or ``MULTI`` would mix with
other callers' commands.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, cast

import hiredis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, ResponseError
from redis.typing import EncodableT, KeyT

log = logging.getLogger(__name__)

Argument = str | bytes | int | float


class Unsent(ConnectionError):
    """The command never reached Redis: sending it again cannot run it twice."""


class Multiplexer:
    """One connection to ``pool``'s server, shared by every caller of :meth:`execute`."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        # The pool's own retry policy, used only for calls that were not sent.
        self._retry: Retry = pool.connection_kwargs.get("retry") or Retry(NoBackoff(), 0)
        self._answers: _Answers | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, *args: Argument) -> Any:
        """Run one command and return its answer; an error reply is raised.

        A command that could not be sent (Redis is down or restarting) is
        retried with backoff. One that was sent is never sent again: if the
        connection breaks before its answer, nobody can tell whether Redis
        ran it, so the call fails with :class:`ConnectionError`, where sending
        it again could write a reply's frames twice.
        """
        command = _pack(args)
        return await self._retry.call_with_retry(
            lambda: self._send(command), _nothing_to_undo, is_retryable=_unsent
        )

    async def _send(self, command: bytes) -> Any:
        answers = self._answers
        if answers is None or answers.lost:
            answers = await self._connect()
        return await answers.send(command)

    async def _connect(self) -> _Answers:
        async with self._connecting:  # one connection, however many callers arrive at once
            if self._answers is None or self._answers.lost:
                try:
                    self._answers = await _Answers.open(self._pool)
                except (OSError, TimeoutError) as error:
                    raise Unsent(f"could not connect to Redis: {error!r}") from error
            return self._answers

    async def aclose(self) -> None:
        if self._answers is not None:
            self._answers.close()
            self._answers = None


class _Answers(asyncio.Protocol):
    """The connection's protocol: answers go to the callers in the order they sent."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=_error_reply)
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._transport: asyncio.Transport | None = None
        self.lost = False

    @classmethod
    async def open(cls, pool: ConnectionPool) -> _Answers:
        """Connect as ``pool``'s connections do: address, TLS, user and database."""
        options = pool.connection_kwargs
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(options.get("socket_connect_timeout") or None):
            if issubclass(pool.connection_class, UnixDomainSocketConnection):
                _, answers = await loop.create_unix_connection(cls, options["path"])
            else:
                tls = None
                if issubclass(pool.connection_class, SSLConnection):
                    tls = pool.make_connection().ssl_context.get()  # type: ignore[no-untyped-call]
                host, port = options.get("host", "localhost"), options.get("port", 6379)
                _, answers = await loop.create_connection(cls, host, port, ssl=tls)
        try:
            await answers._hello(options)
        except BaseException:
            answers.close()
            raise
        return answers

    async def _hello(self, options: dict[str, Any]) -> None:
        if options.get("password") is not None:
            user = [options["username"]] if options.get("username") else []
            await self.send(_pack(("AUTH", *user, options["password"])))
        if options.get("db"):
            await self.send(_pack(("SELECT", options["db"])))

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost or self._transport is None:
            raise Unsent("the shared Redis connection is closed")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        self._transport.write(command)
        return answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (answer := self._reader.gets()) is not False:
            if not self._waiting:
                self._fail(ConnectionError("Redis answered a command nobody sent"))
                return
            waiter = self._waiting.popleft()
            if waiter.done():  # its caller was cancelled; the answer is dropped
                continue
            if isinstance(answer, ResponseError):
                waiter.set_exception(answer)
            else:
                waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost:
            self._fail(ConnectionError(f"the shared Redis connection was lost: {exc or 'EOF'}"))

    def close(self) -> None:
        self.lost = True  # on purpose: nothing to warn about
        self._fail(ConnectionError("the shared Redis connection was closed"))

    def _fail(self, error: ConnectionError) -> None:
        """Fail every call still waiting: nobody can tell whether Redis ran
        their commands. The next call opens a new connection."""
        if not self.lost:
            log.warning("%s; the calls waiting on it fail", error)
        self.lost = True
        if self._transport is not None:
            self._transport.close()
        waiting, self._waiting = self._waiting, deque()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_exception(error)


def _pack(args: tuple[Argument, ...]) -> bytes:
    # hiredis packs in C, where redis-py packs in Python; its stub types one element.
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


def _error_reply(message: str) -> ResponseError:
    # The one error reply Parley acts on; redis-py's parser maps it the same way.
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


def _unsent(error: Exception) -> bool:
    return isinstance(error, Unsent)


async def _nothing_to_undo(error: Exception) -> None:
    """Between attempts: a lost connection is replaced on the next one."""


class MultiplexedScript(AsyncScript):
    """A script run through a :class:`Multiplexer` rather than a pooled connection.

    With ``client`` (a pipeline, say) it runs as redis-py's own script would.
    """

    def __init__(self, client: MultiplexedRedis, script: str) -> None:
        super().__init__(client, script)
        self._multiplexer = client.multiplexer

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Redis | RedisCluster | Pipeline | None = None,
    ) -> Any:
        if client is not None:
            return await super().__call__(keys, args, client)
        keys, args = keys or [], list(args or [])
        call: list[Any] = ["EVALSHA", self.sha, len(keys), *keys, *args]
        try:
            return await self._multiplexer.execute(*call)
        except NoScriptError:  # a restarted or flushed Redis: load it once more
            sha = await self._multiplexer.execute("SCRIPT", "LOAD", cast(str, self.script))
            self.sha = call[1] = sha.decode() if isinstance(sha, bytes) else str(sha)
            return await self._multiplexer.execute(*call)


class MultiplexedRedis(Redis):
    """redis-py's client, whose registered scripts share one connection.

    Every other command goes through the pool as before.
    """

    def __init__(self, *, connection_pool: ConnectionPool) -> None:
        super().__init__(connection_pool=connection_pool)
        self.multiplexer = Multiplexer(connection_pool)

    # redis-py types the method by its synchronous Script, though Redis's
    # asyncio client returns an AsyncScript, as this one does.
    def register_script(self, script: str) -> AsyncScript:  # type: ignore[override]
        return MultiplexedScript(self, script)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self.multiplexer.aclose()
        await super().aclose(close_connection_pool)
