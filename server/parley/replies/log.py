"""The reply log: a Redis Stream of frames per reply, written by one task,
read by any number of sockets and SSE responses on any instance.

Each delta is appended together with the running copy of the text and the
last sequence number in one pipelined round trip, so a reader that sees
delta ``n`` in the stream can trust the text copy up to ``n``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from parley.replies.keys import Keys
from parley.storage.redis import as_text

# How long a reader blocks on XREAD before re-checking the reply's state.
READ_BLOCK_MS = 5_000
READ_BATCH = 256

Frame = dict[str, Any]

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
    last_seq: int

    @property
    def running(self) -> bool:
        return self.status == "streaming"


class ReplyLog:
    def __init__(self, redis: Redis, keys: Keys, *, retention_seconds: int) -> None:
        self.redis = redis
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
                    "last_seq": 0,
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
            last_seq=int(fields["last_seq"]),
        )

    async def text(self, reply_id: str) -> str:
        value = await self.redis.get(self.keys.text(reply_id))
        return as_text(value) if value is not None else ""

    async def append_delta(self, reply_id: str, seq: int, text: str) -> None:
        frame = {"type": "delta", "reply_id": reply_id, "seq": seq, "text": text}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.events(reply_id), {"f": json.dumps(frame), "at": seq})
            pipe.append(self.keys.text(reply_id), text)
            pipe.hset(self.keys.state(reply_id), "last_seq", seq)
            await pipe.execute()

    async def append_frame(self, reply_id: str, frame: Frame, *, at_seq: int) -> None:
        """A non-delta frame (notice, error), positioned after delta ``at_seq``."""
        await self.redis.xadd(self.keys.events(reply_id), {"f": json.dumps(frame), "at": at_seq})

    async def close(self, reply_id: str, conversation_id: str, done: Frame, at_seq: int) -> None:
        """Append ``done``, then let the log expire after the resume window."""
        ttl = self.retention_seconds
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.keys.events(reply_id), {"f": json.dumps(done), "at": at_seq})
            pipe.hset(self.keys.state(reply_id), "status", done["status"])
            for key in (self.keys.events(reply_id), self.keys.text(reply_id)):
                pipe.expire(key, ttl)
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

    async def follow(self, reply_id: str, after_seq: int = 0) -> AsyncIterator[Frame]:
        """Frames of a reply from delta ``after_seq + 1`` on, live, until ``done``.

        Notices positioned at or after ``after_seq`` are repeated, so a
        client may see a notice twice across a resume but never miss one.
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
                frame: Frame = json.loads(fields[b"f"])
                at = int(fields[b"at"])
                if frame["type"] == "delta" and at <= after_seq:
                    continue
                if frame["type"] != "delta" and at < after_seq:
                    continue
                yield frame
                if frame["type"] == "done":
                    return

    async def exists(self, reply_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.events(reply_id), self.keys.state(reply_id)))
