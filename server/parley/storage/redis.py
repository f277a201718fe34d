"""The Redis client, and reading its replies as text."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError


def connect(url: str) -> Redis:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` URLs.

    Commands are retried (three times, with jittered backoff up to a second)
    on connection errors, so a Redis restart or failover costs a reply a
    short pause rather than its life: pooled connections go stale when
    Redis restarts and the first command on each would otherwise fail.
    Replies stay bytes (no ``decode_responses``) and are decoded where used.
    """
    return Redis.from_url(
        url,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
        retry_on_error=[ConnectionError, TimeoutError],
    )


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
