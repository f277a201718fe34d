"""Recent conversation history: cached in Redis, recorded in Postgres.

The cache is a capped Redis list per conversation. It is only ever appended
to when it already exists (RPUSHX), and rebuilt from Postgres when missing,
so it can lag the record but never contradict it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

from parley.llm.base import ChatMessage
from parley.storage.conversations import ConversationStore
from parley.storage.keys import Keys
from parley.storage.redis import RedisClient

CACHE_TTL_SECONDS = 24 * 3600


class ConversationMemory:
    def __init__(
        self, redis: RedisClient, keys: Keys, conversations: ConversationStore, *, size: int
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.conversations = conversations
        self.size = size

    async def recent(self, conversation_id: UUID) -> list[ChatMessage]:
        key = self.keys.history(str(conversation_id))
        cached = await self.redis.lrange(key, 0, -1)
        if cached:
            return [_decode(item) for item in cached]
        stored = await self.conversations.recent_context(conversation_id, self.size)
        history = [ChatMessage(m.role, m.content) for m in stored]  # type: ignore[arg-type]
        if history:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.rpush(key, *[_encode(m) for m in history])
                pipe.expire(key, CACHE_TTL_SECONDS)
                await pipe.execute()
        return history

    async def append(self, conversation_id: UUID, messages: Sequence[ChatMessage]) -> None:
        key = self.keys.history(str(conversation_id))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpushx(key, *[_encode(m) for m in messages])
            pipe.ltrim(key, -self.size, -1)
            pipe.expire(key, CACHE_TTL_SECONDS)
            await pipe.execute()

    async def forget(self, conversation_id: UUID) -> None:
        await self.redis.delete(self.keys.history(str(conversation_id)))


def _encode(message: ChatMessage) -> str:
    return json.dumps({"role": message.role, "content": message.content})


def _decode(raw: bytes | str) -> ChatMessage:
    item = json.loads(raw)
    return ChatMessage(item["role"], item["content"])
