"""Rate limits: per user on REST (shared through Redis), per connection on sockets.

REST limits use the ``limits`` library (what slowapi is built on) through its
asyncio API, in a small ASGI middleware. slowapi itself was dropped: its ASGI
middleware re-sends the response start with every body chunk, which breaks
streamed (SSE) responses, and its storage calls block the event loop.

When Redis cannot be reached the limit cannot be checked. Requests are then
refused (``rate_limited``, with ``Retry-After``) unless the operator chose
``PARLEY_RATE_LIMIT_FAIL_OPEN``: an outage must not switch the limit off
silently. Either way the outage is logged once, and so is the recovery.
"""

from __future__ import annotations

import logging
import time
from enum import Enum

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.auth.tokens import Principal
from parley.errors import RateLimited
from parley.observability import metrics
from parley.transport.http import error_response

log = logging.getLogger(__name__)

LIMITED_PREFIX = "/v1/"
POOL_SIZE = 1024
# A Redis that accepts connections but does not answer must not hang requests.
REDIS_TIMEOUT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 5


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


class Verdict(Enum):
    ALLOWED = "allowed"
    LIMITED = "limited"
    UNCHECKED = "unchecked"  # Redis unreachable and failing closed


class UserRateLimiter:
    """``limit`` (e.g. ``"120/minute"``) per user, counted in Redis."""

    def __init__(self, redis_url: str, limit: str, *, fail_open: bool = False) -> None:
        self.item: RateLimitItem = parse(limit)
        self.fail_open = fail_open
        # limits builds its own client; its default pool (100) is too small
        # for hundreds of concurrent requests and would fail every check.
        storage = RedisStorage(
            _limits_uri(redis_url),
            implementation="redispy",
            wrap_exceptions=True,
            max_connections=POOL_SIZE,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self.limiter = MovingWindowRateLimiter(storage)
        self._failing = False

    async def check(self, key: str) -> Verdict:
        """Count a request of ``key`` against its limit."""
        try:
            allowed = await self.limiter.hit(self.item, "parley-rest", key)
        except StorageError as error:
            metrics.storage_error("redis", "rate_limit")
            self._note_outage(error.storage_error)
            return Verdict.ALLOWED if self.fail_open else Verdict.UNCHECKED
        if self._failing:
            self._failing = False
            log.warning("rate limits can be checked again")
        return Verdict.ALLOWED if allowed else Verdict.LIMITED

    def _note_outage(self, error: Exception) -> None:
        if self._failing:
            return  # logged when it began; one line per request would flood the log
        self._failing = True
        outcome = "allowing" if self.fail_open else "refusing"
        log.error(
            "rate limits cannot be checked (Redis: %s); %s REST requests until it is back "
            "(PARLEY_RATE_LIMIT_FAIL_OPEN=%s)",
            error or type(error).__name__,
            outcome,
            str(self.fail_open).lower(),
        )


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
        verdict = await self.limiter.check(_caller(HTTPConnection(scope))) if limited else None
        if verdict is Verdict.LIMITED:
            metrics.rate_limited("rest")
            response = error_response(RateLimited(f"Limit is {self.limiter.item}."))
        elif verdict is Verdict.UNCHECKED:
            metrics.rate_limited("rest", "unchecked")
            response = error_response(
                RateLimited("Rate limits cannot be checked right now; retry shortly.")
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def _caller(connection: HTTPConnection) -> str:
    principal: Principal | None = connection.scope.get("state", {}).get("principal")
    if principal is not None:
        return f"user:{principal.user_id}"
    return f"ip:{connection.client.host if connection.client else 'unknown'}"
