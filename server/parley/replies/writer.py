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
from dataclasses import dataclass, replace

from parley.errors import ParleyError, error_frame
from parley.protocol import (
    DeltaFrame,
    NoticeFrame,
    ServerFrame,
    SourcesFrame,
    ToolCallFrame,
    ToolResultFrame,
)
from parley.replies.events import Event
from parley.replies.feed import ReplyFeed
from parley.replies.log import ReplyLog
from parley.rules import RuleEvent

NumberedFrame = DeltaFrame | ToolCallFrame | ToolResultFrame | SourcesFrame


@dataclass(frozen=True, slots=True)
class _Numbered:
    """A frame that takes the next ``seq`` when it is written, like a delta."""

    frame: NumberedFrame


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
        self._pending: list[str | _Numbered | ServerFrame] = []  # texts (deltas) and other frames
        self._in_flight = False
        self._drained: list[asyncio.Future[None]] = []
        self._failure: BaseException | None = None
        self._holding = False  # notices and numbered frames wait (see hold)

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
            self.log.appender.schedule(self)  # text never waits, and takes what is held

    def hold(self) -> None:
        """Keep notices and numbered frames (sources) back until the first text or
        error, :meth:`release` and a later frame, or :meth:`drain`.

        A reply's opening frames (its input notices, its sources) used to go in a
        batch of their own just before the model's first text, which then waited
        out the appender's interval (4 ms) behind them: on a quiet instance that
        was half of the time to first token. Held, they go with the text.
        """
        self._holding = True

    def release(self) -> None:
        """Frames from now on are sent as usual; held ones go with the next of them."""
        self._holding = False

    def notice(self, event: RuleEvent) -> None:
        self._check()
        self.rule_events.append(event)
        self._push(
            NoticeFrame(
                reply_id=self.reply_id, rule=event.rule, action=event.action, detail=event.detail
            )
        )

    def error(self, error: ParleyError) -> None:
        self._push(error_frame(error, reply_id=self.reply_id), now=True)

    def numbered(self, frame: NumberedFrame) -> None:
        """A frame in the deltas' sequence (a tool step): its ``seq`` is set to the
        next one when it is written, whatever it was made with."""
        self._check()
        self._pending.append(_Numbered(frame))
        if not self._holding:
            self.log.appender.schedule(self)

    async def drain(self) -> None:
        """Wait until everything is written; raise if a write failed."""
        if (self._pending or self._in_flight) and self._failure is None:
            if self._pending:  # held frames may not be on their way yet
                self.log.appender.schedule(self)
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
                events.append(Event.of(replace(item.frame, seq=self.seq), at=self.seq))
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

    def _push(self, frame: ServerFrame, *, now: bool = False) -> None:
        self._check()
        self._pending.append(frame)
        if now or not self._holding:
            self.log.appender.schedule(self)

    def _check(self) -> None:
        """Refuse more text once a write failed: the client would never see it."""
        if self._failure is not None:
            raise self._failure
