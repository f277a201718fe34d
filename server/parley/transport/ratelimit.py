"""Rate limits: a token bucket per WebSocket connection, and slowapi for REST.

REST limits are per user (not per IP) and stored in Redis, so they hold
across instances. slowapi's storage calls are synchronous; against Redis on
the same network they cost well under a millisecond per request.
"""

from __future__ import annotations

import time

from slowapi import Limiter
from starlette.requests import Request

from parley.auth.tokens import Principal


class TokenBucket:
    """``rate`` frames per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def user_key(request: Request) -> str:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return f"user:{principal.user_id}"
    client = request.client.host if request.client else "unknown"
    return f"ip:{client}"


def limits_storage_uri(redis_url: str) -> str:
    """slowapi (via ``limits``) spells a Unix socket ``redis+unix://``."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


def build_limiter(redis_url: str, default_limit: str) -> Limiter:
    return Limiter(
        key_func=user_key,
        default_limits=[default_limit],
        storage_uri=limits_storage_uri(redis_url),
        key_prefix="parley-ratelimit",
        # Redis unreachable: serve the request rather than fail it; /ready
        # reports the outage.
        swallow_errors=True,
    )
