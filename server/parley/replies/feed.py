"""In-process delivery of the replies this instance is generating.

Every frame is written to the reply's Redis Stream first; once the write is
acknowledged it is also handed to the sockets on this instance that follow
the reply, so they never wait on a Redis read. Sockets on other instances,
and any socket after the reply has ended here, read the stream instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from parley.replies.events import Event


class ReplyFeed:
    def __init__(self, reply_id: str, user_id: str) -> None:
        self.reply_id = reply_id
        self.user_id = user_id
        self.history: list[Event] = []
        self._followers: set[asyncio.Queue[Event | None]] = set()

    def publish(self, events: Sequence[Event]) -> None:
        self.history.extend(events)
        for queue in self._followers:
            for event in events:
                queue.put_nowait(event)

    def detach(self) -> None:
        """The reply ended here without ``done``: followers go to the stream."""
        for queue in self._followers:
            queue.put_nowait(None)

    async def follow(self, after_seq: int) -> AsyncIterator[Event]:
        """Events after ``after_seq``; ends at ``done`` or when detached."""
        # Snapshot and subscribe with no await in between: nothing published
        # in the meantime can be missed or seen twice.
        backlog = list(self.history)
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._followers.add(queue)
        try:
            for past in backlog:
                if past.follows(after_seq):
                    yield past
                if past.ends_reply:
                    return
            while (event := await queue.get()) is not None:
                if event.follows(after_seq):
                    yield event
                if event.ends_reply:
                    return
        finally:
            self._followers.discard(queue)


class LocalFeeds:
    """The feeds of the replies running on this instance, by reply id."""

    def __init__(self) -> None:
        self._feeds: dict[str, ReplyFeed] = {}

    def open(self, reply_id: str, user_id: str) -> ReplyFeed:
        feed = self._feeds[reply_id] = ReplyFeed(reply_id, user_id)
        return feed

    def get(self, reply_id: str) -> ReplyFeed | None:
        return self._feeds.get(reply_id)

    def close(self, reply_id: str) -> None:
        self._feeds.pop(reply_id, None)
