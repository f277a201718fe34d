"""Every frame this instance's replies write, in one Redis round trip per batch.

A reply with frames to write asks :class:`Appender` to collect them. The
appender sends one batch at a time: it takes every waiting reply's frames
at the moment the batch leaves (so a reply's text that arrived meanwhile is
already merged into one delta) and appends them all with a single script
call, one command however many frames. (On a Redis Cluster a script's keys
must share a hash slot: there it is one call per slot, all in one pipeline,
which redis-py sends as one round trip per node, to the nodes at once.)
A quiet instance sends at once; a busy one leaves at least ``interval``
between batches, turning thousands of frames a second into a few hundred
round trips. Each reply hears back once its frames are stored, and only
then shows them to anyone: a frame a client has seen survives the death of
this instance.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from parley.replies.events import Event
from parley.storage.multiplex import Multiplexer
from parley.storage.redis import RedisClient

# ARGV holds four values per frame: the index of its stream in KEYS, then the
# stream entry's fields.
_APPEND = """
for i = 1, #ARGV, 4 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', 'f', ARGV[i + 1], 't', ARGV[i + 2],
             'at', ARGV[i + 3])
end
return #ARGV / 4
"""

# Frames per script call: Redis runs a script atomically, blocking other clients.
MAX_SCRIPT_FRAMES = 2_000


class FrameSource(Protocol):
    """A reply with frames waiting to be written."""

    @property
    def stream(self) -> str: ...

    def take(self) -> list[Event]:
        """Everything waiting, numbered; called as the batch leaves."""
        ...

    def written(self, events: list[Event], error: BaseException | None) -> None:
        """Called once the batch holding ``events`` is stored, or failed."""
        ...


class Appender:
    def __init__(self, redis: RedisClient, *, interval: float) -> None:
        self._sha = hashlib.sha1(_APPEND.encode()).hexdigest()
        # On one server the appender has a connection of its own (borrowing one
        # from the pool for every batch cost more CPU than the rest of the
        # write). A batch whose answer was lost is not sent again: its frames
        # might be written twice.
        self._cluster: RedisCluster | None = None
        self._multiplexer: Multiplexer | None = None
        if isinstance(redis, RedisCluster):
            self._cluster = redis
        else:
            self._multiplexer = Multiplexer(redis.connection_pool)
        self.interval = interval
        self._waiting: dict[FrameSource, None] = {}  # an ordered set
        self._sending: asyncio.Task[None] | None = None
        self._last_sent = float("-inf")

    def schedule(self, source: FrameSource) -> None:
        """Write ``source``'s frames with the next batch."""
        self._waiting[source] = None
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_batches())

    async def _send_batches(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                if (wait := self._last_sent + self.interval - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self._last_sent = loop.time()
                sources, self._waiting = list(self._waiting), {}
                await self._send([(source, source.take()) for source in sources])
        finally:
            self._sending = None

    async def _send(self, batch: list[tuple[FrameSource, list[Event]]]) -> None:
        error: BaseException | None = None
        failed: dict[FrameSource, BaseException] = {}  # a cluster's calls answered by errors
        try:
            if self._cluster is None:
                for keys, args in _script_calls(batch):
                    await self._append(keys, args)
            else:
                failed = await self._append_by_slot(self._cluster, batch)
        except asyncio.CancelledError:  # shutting down: nobody may wait forever
            error = ConnectionError("the reply log writer stopped")
            raise
        except Exception as failure:
            error = failure
        finally:
            for source, events in batch:
                source.written(events, error or failed.get(source))

    async def _append_by_slot(
        self, cluster: RedisCluster, batch: list[tuple[FrameSource, list[Event]]]
    ) -> dict[FrameSource, BaseException]:
        """The batch as one script call per hash slot, in one pipeline; the sources
        whose call failed, with its error. EVAL, not EVALSHA: no node can lack the script."""
        by_slot: dict[int, list[tuple[FrameSource, list[Event]]]] = {}
        for source, events in batch:
            by_slot.setdefault(key_slot(source.stream.encode()), []).append((source, events))
        calls: list[list[tuple[FrameSource, list[Event]]]] = []
        async with cluster.pipeline(transaction=False) as pipe:
            for group in by_slot.values():
                for keys, args in _script_calls(group):
                    pipe.eval(_APPEND, len(keys), *keys, *args)
                    calls.append(group)
            results = await pipe.execute(raise_on_error=False)
        return {
            source: result
            for group, result in zip(calls, results, strict=True)
            if isinstance(result, BaseException)
            for source, _ in group
        }

    async def _append(self, keys: list[str], args: list[str | int]) -> None:
        assert self._multiplexer is not None, "a cluster's batches go by _append_by_slot"
        call = ("EVALSHA", self._sha, len(keys), *keys, *args)
        try:
            await self._multiplexer.execute(*call)
        except NoScriptError:  # a restarted or flushed Redis: load the script once more
            await self._multiplexer.execute("SCRIPT", "LOAD", _APPEND)
            await self._multiplexer.execute(*call)

    async def aclose(self) -> None:
        if self._multiplexer is not None:
            await self._multiplexer.aclose()


def _script_calls(
    batch: list[tuple[FrameSource, list[Event]]],
) -> list[tuple[list[str], list[str | int]]]:
    calls: list[tuple[list[str], list[str | int]]] = []
    position: dict[str, int] = {}
    args: list[str | int] = []
    for source, events in batch:
        if not events:
            continue
        if len(args) >= 4 * MAX_SCRIPT_FRAMES:
            calls.append((list(position), args))
            position, args = {}, []
        index = position.setdefault(source.stream, len(position) + 1)
        for event in events:
            args += (index, event.json, event.kind, event.at)
    if args:
        calls.append((list(position), args))
    return calls
