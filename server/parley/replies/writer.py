"""Writing a reply's frames: to its Redis Stream first, then to local followers.

Text that arrives while a write is on the wire is merged into the next
delta, so a fast upstream costs fewer frames and fewer round trips, and a
slow one adds no delay: the first delta always leaves at once.
"""

from __future__ import annotations

import asyncio

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
        self.parts: list[str] = []  # everything accepted, written or not
        self.rule_events: list[RuleEvent] = []
        self._pending: list[str | Frame] = []  # texts (deltas) and other frames
        self._flushing: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def delta(self, text: str) -> None:
        self._check()
        if text:
            self.parts.append(text)
            if self._pending and isinstance(self._pending[-1], str):
                self._pending[-1] += text
            else:
                self._pending.append(text)
            self._kick()

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
        """Wait until everything is written; raise if a write failed."""
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
        if self._failure is not None:
            raise self._failure

    def _push(self, frame: Frame) -> None:
        self._check()
        self._pending.append(frame)
        self._kick()

    def _check(self) -> None:
        """Refuse more text once a write failed: the client would never see it."""
        if self._failure is not None:
            raise self._failure

    def _kick(self) -> None:
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                events = self._number(self._pending)
                self._pending = []
                await self.log.append(self.reply_id, events)
                self.feed.publish(events)
        except BaseException as error:
            self._failure = error
        finally:
            self._flushing = None

    def _number(self, items: list[str | Frame]) -> list[Event]:
        events = []
        for item in items:
            if isinstance(item, str):
                self.seq += 1
                events.append(Event.delta(self.reply_id, self.seq, item))
            else:
                events.append(Event.of(item, at=self.seq))
        return events
