"""The one secret behind guests' ids and tokens, and the keys derived from it.

``PARLEY_GUEST_SECRET`` when set; otherwise the first instance makes one and
keeps it in Redis, where every instance sharing that Redis finds the same.
Each use gets its own key (HMAC of the secret and a label), so an id's tag can
never be replayed as a token's signature or the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from parley.storage.redis import RedisClient


async def guest_secret(configured: str | None, redis: RedisClient, key: str) -> str:
    """The configured secret, else the one shared through Redis (made if missing)."""
    if configured:
        return configured
    await redis.set(key, secrets.token_urlsafe(48), nx=True)  # the first instance's wins
    stored = await redis.get(key)
    if not stored:
        raise RuntimeError(f"the guest secret vanished from Redis ({key})")
    return stored.decode() if isinstance(stored, bytes) else str(stored)


def derived_key(secret: str, label: str) -> bytes:
    """A 256-bit key for one use of ``secret``."""
    return hmac.new(secret.encode(), f"parley guests: {label}".encode(), hashlib.sha256).digest()
