"""Writing a reply's frames: to its Redis Stream first, then to local followers.

Frames wait in the writer until the instance's :class:`Appender` takes them
with its next batch; text that arrives meanwhile is merged into one delta,
so a busy instance costs fewer frames as well as fewer round trips, and a
quiet one adds no delay. Followers on this instance get frames once Redis
has them, so what a client saw is never lost with the instance.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from parley.errors import ParleyError, error_body
from parley.replies.events import Event, Frame
from parley.replies.feed import ReplyFeed
from parley.replies.log import ReplyLog
from parley.rules import RuleEvent


@dataclass(frozen=True, slots=True)
class _Numbered:
    """A frame that takes the next ``seq`` when it is written, like a delta."""

    frame: Frame


class ReplyWriter:
    def __init__(self, reply_log: ReplyLog, feed: ReplyFeed, reply_id: str) -> None:
        self.log = reply_log
        self.feed = feed
        self.reply_id = reply_id
        self.stream = reply_log.keys.events(reply_id)
        self.seq = 0  # the last frame numbered
        self.parts: list[str] = []  # everything accepted, written or not
        self.rule_events: list[RuleEvent] = []
        self.first_text_at: float | None = None  # time.monotonic() of the first delta
        self._pending: list[str | _Numbered | Frame] = []  # texts (deltas) and other frames
        self._in_flight = False
        self._drained: list[asyncio.Future[None]] = []
        self._failure: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def delta(self, text: str) -> None:
        self._check()
        if text:
            if not self.parts:
                self.first_text_at = time.monotonic()
            self.parts.append(text)
            if self._pending and isinstance(self._pending[-1], str):
                self._pending[-1] += text
            else:
                self._pending.append(text)
            self.log.appender.schedule(self)

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

    def numbered(self, frame: Frame) -> None:
        """A frame in the deltas' sequence (a tool step): it gets the next ``seq``."""
        self._check()
        self._pending.append(_Numbered(frame))
        self.log.appender.schedule(self)

    async def drain(self) -> None:
        """Wait until everything is written; raise if a write failed."""
        if (self._pending or self._in_flight) and self._failure is None:
            drained = asyncio.get_running_loop().create_future()
            self._drained.append(drained)
            await drained
        if self._failure is not None:
            raise self._failure

    # -- the appender's side -------------------------------------------------------

    def take(self) -> list[Event]:
        if self._failure is not None:  # never write past a hole in the stream
            self._pending = []
            return []
        events = []
        for item in self._pending:
            if isinstance(item, str):
                self.seq += 1
                events.append(Event.delta(self.reply_id, self.seq, item))
            elif isinstance(item, _Numbered):
                self.seq += 1
                head = {"type": item.frame["type"], "reply_id": self.reply_id, "seq": self.seq}
                events.append(Event.of({**head, **item.frame}, at=self.seq))
            else:
                events.append(Event.of(item, at=self.seq))
        self._pending = []
        self._in_flight = True
        return events

    def written(self, events: list[Event], error: BaseException | None) -> None:
        self._in_flight = False
        if error is not None:
            self._failure = self._failure or error
        else:
            self.feed.publish(events)
        if self._failure is not None or not self._pending:
            for drained in self._drained:
                if not drained.done():
                    drained.set_result(None)
            self._drained = []

    # -------------------------------------------------------------------------------

    def _push(self, frame: Frame) -> None:
        self._check()
        self._pending.append(frame)
        self.log.appender.schedule(self)

    def _check(self) -> None:
        """Refuse more text once a write failed: the client would never see it."""
        if self._failure is not None:
            raise self._failure
