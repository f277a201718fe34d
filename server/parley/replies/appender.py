"""Every frame this instance's replies write, in one Redis round trip per batch.

Replies hand their frames to :class:`Appender`; it sends whatever has queued
up as a single script call that appends each frame to its reply's stream, at
most once per ``interval``. A quiet instance sends a frame at once (the last
batch left long ago); a busy one turns thousands of frames a second into a
few hundred round trips, each one command rather than one per frame.

Nothing waits on this for the user's sake: followers on this instance get
frames in process as they are made (see :mod:`parley.replies.feed`); the
streams serve readers on other instances and resumes, for which a few
milliseconds of delay do not matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.asyncio import Redis

from parley.replies.events import Event

# ARGV holds four values per frame: the index of its stream in KEYS, then the
# stream entry's fields. One script call is one command however many frames.
_APPEND = """
for i = 1, #ARGV, 4 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', 'f', ARGV[i + 1], 't', ARGV[i + 2],
             'at', ARGV[i + 3])
end
return #ARGV / 4
"""

# Bounds one script call (Redis runs it atomically, blocking other clients).
MAX_BATCH = 2_000


class Appender:
    def __init__(self, redis: Redis, *, interval: float) -> None:
        self._script = redis.register_script(_APPEND)
        self.interval = interval
        self._queue: list[tuple[str, Event]] = []
        self._batch: asyncio.Future[None] | None = None  # done when the queue is stored
        self._sending: asyncio.Task[None] | None = None
        self._last_sent = float("-inf")

    def append(self, stream: str, events: Sequence[Event]) -> asyncio.Future[None]:
        """Queue ``events`` for ``stream``, after everything queued before them.

        The future is done (or failed) once Redis has them; frames queued
        together share one future.
        """
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        self._queue.extend((stream, event) for event in events)
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_queued())
        return self._batch

    async def _send_queued(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if (wait := self._last_sent + self.interval - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self._last_sent = loop.time()
                entries, self._queue = self._queue, []
                batch, self._batch = self._batch, None
                assert batch is not None
                await self._send(entries, batch)
        except asyncio.CancelledError:  # shutting down: writers must not wait forever
            if self._batch is not None:
                self._batch.set_exception(ConnectionError("the reply log writer stopped"))
                self._batch = None
            raise
        finally:
            self._sending = None

    async def _send(self, entries: list[tuple[str, Event]], batch: asyncio.Future[None]) -> None:
        try:
            for start in range(0, len(entries), MAX_BATCH):
                keys, args = _script_arguments(entries[start : start + MAX_BATCH])
                await self._script(keys=keys, args=args)
        except asyncio.CancelledError:
            batch.set_exception(ConnectionError("the reply log writer stopped"))
            raise
        except Exception as error:
            batch.set_exception(error)
        else:
            batch.set_result(None)


def _script_arguments(entries: list[tuple[str, Event]]) -> tuple[list[str], list[str | int]]:
    position: dict[str, int] = {}
    args: list[str | int] = []
    for stream, event in entries:
        index = position.setdefault(stream, len(position) + 1)
        args += (index, event.json, event.kind, event.at)
    return list(position), args
