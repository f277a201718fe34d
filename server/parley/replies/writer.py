"""Writing a reply's frames: to the followers on this instance, and to its Redis Stream.

Each frame goes to local followers the moment it is made, and is queued for
the reply's stream, which the instance's :class:`Appender` writes in batches.
:meth:`ReplyWriter.drain` waits until the stream has everything, so ``done``
is never written before the frames it follows. If a write fails, the writer
refuses further text and the reply ends: what the client saw is still stored
in Postgres, since the stored text is the writer's, not the stream's.
"""

from __future__ import annotations

import asyncio
import contextlib

from parley.errors import ParleyError, error_body
from parley.replies.events import Event, Frame
from parley.replies.feed import ReplyFeed
from parley.replies.log import ReplyLog
from parley.rules import RuleEvent


class ReplyWriter:
    def __init__(self, reply_log: ReplyLog, feed: ReplyFeed, reply_id: str) -> None:
        self.log = reply_log
        self.feed = feed
        self.reply_id = reply_id
        self.seq = 0  # the last delta written
        self.parts: list[str] = []  # every delta's text
        self.rule_events: list[RuleEvent] = []
        self._last_write: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def delta(self, text: str) -> None:
        self._check()
        if text:
            self.parts.append(text)
            self.seq += 1
            self._emit(Event.delta(self.reply_id, self.seq, text))

    def notice(self, event: RuleEvent) -> None:
        self._check()
        self.rule_events.append(event)
        self._push(
            {
                "type": "notice",
                "reply_id": self.reply_id,
                "rule": event.rule,
                "action": event.action,
                "detail": event.detail,
            }
        )

    def error(self, error: ParleyError) -> None:
        self._push({"type": "error", "reply_id": self.reply_id, **error_body(error)})

    async def drain(self) -> None:
        """Wait until the stream has every frame; raise if a write failed."""
        if self._last_write is not None:
            with contextlib.suppress(Exception):  # the failure is raised below
                await asyncio.shield(self._last_write)
        if self._failure is not None:
            raise self._failure

    def _push(self, frame: Frame) -> None:
        self._check()
        self._emit(Event.of(frame, at=self.seq))

    def _emit(self, event: Event) -> None:
        self.feed.publish([event])
        write = self.log.append(self.reply_id, [event])
        if write is not self._last_write:  # frames queued together share a future
            write.add_done_callback(self._written)
            self._last_write = write

    def _written(self, write: asyncio.Future[None]) -> None:
        if self._failure is None:
            if write.cancelled():
                self._failure = ConnectionError("the reply log write was cancelled")
            else:
                self._failure = write.exception()

    def _check(self) -> None:
        """Refuse more text once a write failed: the stream would have a hole."""
        if self._failure is not None:
            raise self._failure
