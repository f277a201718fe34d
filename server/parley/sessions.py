"""User sessions in Redis: which conversation a socket is attached to.

Any instance can read any session, so a client reattaches with its
``session_id`` wherever its next connection lands.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from parley.errors import NotFound
from parley.storage.keys import Keys
from parley.storage.redis import RedisClient, as_text


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: str
    conversation_id: str


# A session is written with its expiry in one round trip (it is on the way to a
# new chat's first message).
_CREATE = """
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'conversation_id', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class SessionStore:
    def __init__(self, redis: RedisClient, keys: Keys, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._create = redis.register_script(_CREATE)

    async def create(self, user_id: str, conversation_id: str) -> Session:
        session = Session(secrets.token_urlsafe(18), user_id, conversation_id)
        await self._create(
            keys=[self.keys.session(session.id)],
            args=[user_id, conversation_id, self.ttl_seconds],
        )
        return session

    async def get(self, session_id: str, user_id: str) -> Session:
        """The caller's session; another user's session is "not found"."""
        key = self.keys.session(session_id)
        raw = await self.redis.hgetall(key)
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        if fields.get("user_id") != user_id:
            raise NotFound("No such session.")
        await self.redis.expire(key, self.ttl_seconds)
        return Session(session_id, user_id, fields["conversation_id"])
