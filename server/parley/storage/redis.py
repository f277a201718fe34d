"""The Redis client, and reading its replies as text."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def connect(url: str) -> Redis:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` URLs.

    Replies stay bytes (no ``decode_responses``): reply text is stored as
    UTF-8 and decoded once, where it is used.
    """
    return Redis.from_url(url, health_check_interval=30)


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
