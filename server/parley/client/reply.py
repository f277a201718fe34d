"""One reply as the client sees it: its typed frames, repeats dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from parley.client.errors import ParleyError
from parley.protocol import (
    AcceptedFrame,
    DeltaFrame,
    DoneFrame,
    ErrorFrame,
    NoticeFrame,
    ResyncFrame,
    ServerFrame,
    SourcesFrame,
    ToolCallFrame,
    ToolResultFrame,
)

# Frames numbered by ``seq``: one sequence per reply, with no gaps.
Numbered = DeltaFrame | ToolCallFrame | ToolResultFrame | SourcesFrame
NUMBERED = (DeltaFrame, ToolCallFrame, ToolResultFrame, SourcesFrame)
# How a reply ends: its ``done``; a ``resync`` when it ended longer ago than
# the server keeps replies; None when a person holds the conversation.
Ending = DoneFrame | ResyncFrame | None
F = TypeVar("F", bound=ServerFrame)


class Reply:
    """The frames of one message's answer, from ``accepted`` to ``done``.

    ``async for frame in reply`` goes through them (from the first, live);
    :meth:`done` waits for the end. A refused message raises
    :class:`ParleyError` from both.
    """

    def __init__(
        self, *, client_id: str | None = None, reply_id: str | None = None, after_seq: int = 0
    ) -> None:
        self.client_id = client_id
        self.reply_id = reply_id
        self.message_id: str | None = None
        self.text = ""
        self.last_seq = after_seq  # the last numbered frame seen: a resume asks for what follows
        self.frames: list[ServerFrame] = []
        loop = asyncio.get_running_loop()
        self._accepted: asyncio.Future[AcceptedFrame | None] = loop.create_future()
        self._ending: asyncio.Future[Ending] = loop.create_future()
        self._seen: set[tuple[str, ...]] = set()  # notices (rule, action) and errors (code)
        self._changed = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self._ending.done()

    async def accepted(self) -> AcceptedFrame | None:
        """The ``accepted`` frame (None for a reply this client only follows)."""
        return await asyncio.shield(self._accepted)

    async def done(self) -> Ending:
        """The frame that ended the reply."""
        return await asyncio.shield(self._ending)

    def __aiter__(self) -> AsyncIterator[ServerFrame]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ServerFrame]:
        index = 0
        while True:
            if index < len(self.frames):
                index += 1
                yield self.frames[index - 1]
            elif self.ended:
                if self._ending.exception() is not None:
                    await self._ending  # raises it
                return
            else:
                self._changed.clear()
                await self._changed.wait()

    # -- views of the frames --------------------------------------------------

    def of_type(self, kind: type[F]) -> list[F]:
        return [frame for frame in self.frames if isinstance(frame, kind)]

    @property
    def numbered(self) -> list[Numbered]:
        return [frame for frame in self.frames if isinstance(frame, NUMBERED)]

    @property
    def seqs(self) -> list[int]:
        return [frame.seq for frame in self.numbered]

    @property
    def notices(self) -> list[NoticeFrame]:
        return self.of_type(NoticeFrame)

    @property
    def errors(self) -> list[ErrorFrame]:
        return self.of_type(ErrorFrame)

    # -- fed by ParleyClient ----------------------------------------------------

    def take(self, frame: ServerFrame) -> bool:
        """Add a frame of this reply; False if it repeats one already taken."""
        if self.ended:
            return False
        match frame:
            case DeltaFrame() | ToolCallFrame() | ToolResultFrame() | SourcesFrame():
                if frame.seq <= self.last_seq:
                    return False
                self.last_seq = frame.seq
                if isinstance(frame, DeltaFrame):
                    self.text += frame.text
            case NoticeFrame() | ErrorFrame():
                key = (
                    ("notice", frame.rule, frame.action)
                    if isinstance(frame, NoticeFrame)
                    else ("error", frame.code)
                )
                if key in self._seen:
                    return False
                self._seen.add(key)
            case AcceptedFrame():
                self.reply_id, self.message_id = frame.reply_id, frame.message_id
                self._accepted.set_result(frame)
            case DoneFrame():
                self.message_id = frame.message_id or self.message_id
            case ResyncFrame():
                self.text = str(frame.message.get("content", ""))
        self.frames.append(frame)
        if isinstance(frame, DoneFrame | ResyncFrame):
            self._end(frame)
        elif isinstance(frame, AcceptedFrame) and frame.reply_id is None:
            self._end(None)
        self._changed.set()
        return True

    def fail(self, error: ParleyError) -> None:
        if self.ended:
            return
        for future in (self._accepted, self._ending):
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: nobody has to await a refusal
        self._changed.set()

    def _end(self, frame: Ending) -> None:
        if not self._accepted.done():
            self._accepted.set_result(None)
        self._ending.set_result(frame)
