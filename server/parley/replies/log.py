"""The reply log: a Redis Stream of frames per reply, written by one task,
read by any number of sockets and SSE responses on any instance.

Frames are appended through the instance's :class:`Appender`, which batches
them across replies; nothing else is written per token. The text written so
far is the stream's deltas put together, which only the sweeper ever needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from parley.replies.appender import Appender
from parley.replies.events import Event
from parley.replies.keys import Keys
from parley.storage.redis import as_text

# How long a reader blocks on XREAD before re-checking the reply's state.
READ_BLOCK_MS = 5_000
READ_BATCH = 256

# Deletes the conversation's "busy" marker only if it still names this reply.
_RELEASE_MARKER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class ReplyState:
    reply_id: str
    user_id: str
    conversation_id: str
    agent_id: str
    status: str

    @property
    def running(self) -> bool:
        return self.status == "streaming"


class ReplyLog:
    def __init__(
        self, redis: Redis, keys: Keys, appender: Appender, *, retention_seconds: int
    ) -> None:
        self.redis = redis
        self.appender = appender
        self.keys = keys
        self.retention_seconds = retention_seconds

    async def open(
        self,
        *,
        reply_id: str,
        user_id: str,
        conversation_id: str,
        agent_id: str,
        owner: str,
        lease_ms: int,
    ) -> bool:
        """Register a new reply and mark its conversation busy.

        Returns ``False`` (and changes nothing) if another reply is running
        in the conversation.
        """
        marker = self.keys.conversation_reply(conversation_id)
        if not await self.redis.set(marker, reply_id, nx=True, px=lease_ms):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.keys.state(reply_id),
                mapping={
                    "user_id": user_id,
                    "conversation_id": conversation_id,
                    "agent_id": agent_id,
                    "status": "streaming",
                },
            )
            pipe.set(self.keys.lease(reply_id), owner, px=lease_ms)
            pipe.sadd(self.keys.active_replies, reply_id)
            await pipe.execute()
        return True

    async def abandon(self, reply_id: str, conversation_id: str) -> None:
        """Undo :meth:`open` for a reply that never started."""
        await self._release_marker(conversation_id, reply_id)
        await self.redis.delete(self.keys.state(reply_id), self.keys.lease(reply_id))
        await self.redis.srem(self.keys.active_replies, reply_id)

    async def running_reply(self, conversation_id: str) -> str | None:
        value = await self.redis.get(self.keys.conversation_reply(conversation_id))
        return as_text(value) if value is not None else None

    async def state(self, reply_id: str) -> ReplyState | None:
        raw = await self.redis.hgetall(self.keys.state(reply_id))
        if not raw:
            return None
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        return ReplyState(
            reply_id=reply_id,
            user_id=fields["user_id"],
            conversation_id=fields["conversation_id"],
            agent_id=fields["agent_id"],
            status=fields["status"],
        )

    def append(self, reply_id: str, events: Sequence[Event]) -> asyncio.Future[None]:
        """Append frames in order; the future is done once Redis has them."""
        return self.appender.append(self.keys.events(reply_id), events)

    async def last_seq(self, reply_id: str) -> int:
        """The seq of the last delta in the log (0 before the first)."""
        entries = await self.redis.xrevrange(self.keys.events(reply_id), count=1)
        return _event(entries[0][1]).at if entries else 0

    async def written(self, reply_id: str) -> tuple[str, int]:
        """The text of the deltas in the log, and the last delta's seq."""
        parts, last_seq = [], 0
        cursor = "-"
        while entries := await self.redis.xrange(
            self.keys.events(reply_id), min=cursor, count=READ_BATCH
        ):
            for _, fields in entries:
                event = _event(fields)
                if event.kind == "delta":
                    parts.append(event.frame["text"])
                    last_seq = event.at
            cursor = "(" + as_text(entries[-1][0])
        return "".join(parts), last_seq

    async def close(self, reply_id: str, conversation_id: str, done: Event) -> None:
        """Append ``done``, then let the log expire after the resume window."""
        ttl = self.retention_seconds
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.events(reply_id), _fields(done))
            pipe.hset(self.keys.state(reply_id), "status", done.frame["status"])
            pipe.expire(self.keys.events(reply_id), ttl)
            pipe.expire(self.keys.state(reply_id), ttl)
            pipe.delete(self.keys.lease(reply_id), self.keys.cancel(reply_id))
            pipe.srem(self.keys.active_replies, reply_id)
            await pipe.execute()
        await self._release_marker(conversation_id, reply_id)

    async def _release_marker(self, conversation_id: str, reply_id: str) -> None:
        await self.redis.eval(
            _RELEASE_MARKER, 1, self.keys.conversation_reply(conversation_id), reply_id
        )

    async def renew(self, reply_id: str, conversation_id: str, owner: str, lease_ms: int) -> bool:
        """Extend the lease; ``False`` if a cancel was requested."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.lease(reply_id), owner, px=lease_ms)
            pipe.pexpire(self.keys.conversation_reply(conversation_id), lease_ms)
            pipe.exists(self.keys.cancel(reply_id))
            *_, cancelled = await pipe.execute()
        return not cancelled

    async def follow(self, reply_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        """Events of a reply that follow ``after_seq``, live, until ``done``.

        Ends without ``done`` if the log has expired (the caller resyncs).
        """
        stream = self.keys.events(reply_id)
        cursor = "0-0"
        while True:
            response: Any = await self.redis.xread(
                {stream: cursor}, count=READ_BATCH, block=READ_BLOCK_MS
            )
            if not response:
                if not await self.redis.exists(stream, self.keys.state(reply_id)):
                    return
                continue
            for entry_id, fields in response[0][1]:
                cursor = entry_id
                event = _event(fields)
                if event.follows(after_seq):
                    yield event
                if event.ends_reply:
                    return

    async def exists(self, reply_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.events(reply_id), self.keys.state(reply_id)))


def _fields(event: Event) -> dict[Any, Any]:
    return {"f": event.json, "t": event.kind, "at": event.at}


def _event(fields: Any) -> Event:
    return Event(as_text(fields[b"t"]), int(fields[b"at"]), as_text(fields[b"f"]))
