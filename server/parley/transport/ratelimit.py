"""Rate limits: per user on REST (shared through Redis), per connection on sockets.

REST limits use the ``limits`` library (what slowapi is built on) through its
asyncio API, in a small ASGI middleware. slowapi itself was dropped: its ASGI
middleware re-sends the response start with every body chunk, which breaks
streamed (SSE) responses, and its storage calls block the event loop.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.auth.tokens import Principal
from parley.errors import RateLimited
from parley.transport.http import error_response

log = logging.getLogger(__name__)

LIMITED_PREFIX = "/v1/"
POOL_SIZE = 1024


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


class UserRateLimiter:
    """``limit`` (e.g. ``"120/minute"``) per user, counted in Redis."""

    def __init__(self, redis_url: str, limit: str) -> None:
        self.item: RateLimitItem = parse(limit)
        # limits builds its own client; its default pool (100) is too small
        # for hundreds of concurrent requests and would fail every check open.
        storage = RedisStorage(
            _limits_uri(redis_url), implementation="redispy", max_connections=POOL_SIZE
        )
        self.limiter = MovingWindowRateLimiter(storage)

    async def allow(self, key: str) -> bool:
        try:
            return await self.limiter.hit(self.item, "parley-rest", key)
        except Exception as error:
            # Redis unreachable: serve rather than refuse; /ready reports it.
            log.warning("rate limit check failed (%s); allowing the request", error)
            return True


def _limits_uri(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class RateLimitMiddleware:
    """Applies the per-user limit to ``/v1/`` requests; needs PrincipalMiddleware first."""

    def __init__(self, app: ASGIApp, limiter: UserRateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = scope["type"] == "http" and scope["path"].startswith(LIMITED_PREFIX)
        if limited and not await self.limiter.allow(_caller(HTTPConnection(scope))):
            response = error_response(RateLimited(f"Limit is {self.limiter.item}."))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _caller(connection: HTTPConnection) -> str:
    principal: Principal | None = connection.scope.get("state", {}).get("principal")
    if principal is not None:
        return f"user:{principal.user_id}"
    return f"ip:{connection.client.host if connection.client else 'unknown'}"
