"""The Redis client, and reading its replies as text."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

# How long a command waits for a pooled connection before failing.
POOL_WAIT_SECONDS = 10


def connect(url: str, *, max_connections: int = 512) -> Redis:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` URLs.

    Commands are retried (three times, with jittered backoff up to a second)
    on connection errors, so a Redis restart or failover costs a reply a
    short pause rather than its life: pooled connections go stale when
    Redis restarts and the first command on each would otherwise fail.
    Replies stay bytes (no ``decode_responses``) and are decoded where used.

    The pool is a blocking one: when every connection is busy (each socket
    following a reply on another instance holds one in a blocking XREAD) a
    command waits for a free connection instead of failing at once.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    return Redis(connection_pool=pool)


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
