"""Recent conversation history: cached in Redis, recorded in Postgres.

The cache is a capped Redis list per conversation. It is only ever appended
to when it already exists, and rebuilt from Postgres when missing, so it can
lag the record but never contradict it.

Its reads and writes ride on the reply's own scripts (parley/replies/log.py):
the script that opens a reply reads it, and the one that closes a reply
appends the turn (or drops the cache when the turn is not known), so a
reply costs no round trip of its own for its history.

A conversation with no messages yet is cached too, as a list holding only
:data:`EMPTY`: a new conversation is seeded so (:meth:`ConversationMemory.started`),
and its first message is answered without asking Postgres for nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from parley.llm.base import ChatMessage
from parley.storage.conversations import ConversationStore
from parley.storage.keys import Keys
from parley.storage.redis import RedisClient

CACHE_TTL_SECONDS = 24 * 3600
# The entry of a cache that knows the conversation is empty (no message encodes to
# it). It stays first; trimming drops it once ``size`` real entries follow it.
EMPTY = ""

# Seeds the cache of a conversation nobody has written in yet.
_SEED = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class HistoryUpdate:
    """What closing a reply does to its conversation's cache (in the close script).

    ``entries`` are appended if the cache exists, which is then trimmed to the
    newest ``size`` entries; with ``forget`` the cache is dropped instead, to
    be rebuilt from Postgres (when what the turn stored is not known here).
    """

    entries: tuple[str, ...] = ()
    size: int = 0
    forget: bool = False
    ttl_seconds: int = CACHE_TTL_SECONDS


FORGET = HistoryUpdate(forget=True)


class ConversationMemory:
    def __init__(
        self, redis: RedisClient, keys: Keys, conversations: ConversationStore, *, size: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.conversations = conversations
        self.size = size
        self._seed = redis.register_script(_SEED)

    async def recent(
        self, conversation_id: UUID, cached: Sequence[bytes | str] | None = None
    ) -> list[ChatMessage]:
        """The newest ``size`` messages the model should see, oldest first.

        ``cached`` is the cache as the reply-opening script read it (empty:
        missing); without it the cache is read here.
        """
        if cached is None:
            key = self.keys.history(str(conversation_id))
            cached = await self.redis.lrange(key, 0, -1)
        if cached:
            return [_decode(item) for item in cached if item]  # EMPTY is b""
        return await self._rebuild(conversation_id)

    async def started(self, conversation_id: UUID) -> None:
        """Seed the cache of a conversation just made: it is known to be empty."""
        await self._seed(
            keys=[self.keys.history(str(conversation_id))], args=[EMPTY, CACHE_TTL_SECONDS]
        )

    def after_turn(self, messages: Sequence[ChatMessage]) -> HistoryUpdate:
        """The update that appends a finished turn's ``messages``."""
        return HistoryUpdate(tuple(_encode(m) for m in messages), self.size)

    async def forget(self, conversation_id: UUID) -> None:
        await self.redis.delete(self.keys.history(str(conversation_id)))

    async def _rebuild(self, conversation_id: UUID) -> list[ChatMessage]:
        stored = await self.conversations.recent_context(conversation_id, self.size)
        history = [ChatMessage(m.role, m.content) for m in stored]  # type: ignore[arg-type]
        entries = [_encode(m) for m in history] if history else [EMPTY]
        key = self.keys.history(str(conversation_id))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.rpush(key, *entries)
            pipe.expire(key, CACHE_TTL_SECONDS)
            await pipe.execute()
        return history


def _encode(message: ChatMessage) -> str:
    return json.dumps({"role": message.role, "content": message.content})


def _decode(raw: bytes | str) -> ChatMessage:
    item = json.loads(raw)
    return ChatMessage(item["role"], item["content"])
