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
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.auth.tokens import Principal
from parley.errors import ParleyError, RateLimited
from parley.observability import metrics
from parley.storage.redis import is_cluster_url
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

    def __init__(
        self, redis_url: str, limit: str, *, namespace: str, fail_open: bool = False
    ) -> None:
        self.item: RateLimitItem = parse(limit)
        self.namespace = namespace  # Keys.rate_limits
        self.fail_open = fail_open
        # limits builds its own client; its default pool (100) is too small
        # for hundreds of concurrent requests and would fail every check.
        self.limiter = MovingWindowRateLimiter(limits_storage(redis_url, POOL_SIZE))
        self._failing = False

    async def check(self, key: str) -> Verdict:
        """Count a request of ``key`` against its limit."""
        try:
            allowed = await self.limiter.hit(self.item, self.namespace, key)
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


def limits_storage(redis_url: str, max_connections: int) -> RedisStorage:
    """The ``limits`` library's storage on Parley's Redis (a single server or a cluster).

    Each window is one key, so a cluster needs no hash tags for them.
    """
    storage = RedisClusterStorage if is_cluster_url(redis_url) else RedisStorage
    tls: dict[str, Any] = {"ssl": True} if redis_url.startswith("rediss+cluster://") else {}
    return storage(
        limits_uri(redis_url),
        implementation="redispy",
        wrap_exceptions=True,
        max_connections=max_connections,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        **tls,
    )


def limits_uri(redis_url: str) -> str:
    """``REDIS_URL`` as ``limits`` names it (``redis+cluster://`` is its own scheme too)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    if redis_url.startswith("rediss+cluster://"):  # limits takes TLS as an option
        return "async+redis+cluster://" + redis_url.removeprefix("rediss+cluster://")
    return "async+" + redis_url


class RateLimitMiddleware:
    """Applies the per-user limit to ``/v1/`` requests; needs PrincipalMiddleware first."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: UserRateLimiter,
        error_shapes: Mapping[str, Callable[[ParleyError], Response]] | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        # Paths that answer errors in another shape (the OpenAI- and Anthropic-compatible
        # APIs: parley.transport.compat.paths), so that their vendor's SDK reads them.
        self.error_shapes = error_shapes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = scope["type"] == "http" and scope["path"].startswith(LIMITED_PREFIX)
        verdict = await self.limiter.check(_caller(HTTPConnection(scope))) if limited else None
        if verdict is None or verdict is Verdict.ALLOWED:
            await self.app(scope, receive, send)
            return
        render = self.error_shapes.get(scope["path"], error_response)
        if verdict is Verdict.LIMITED:
            metrics.rate_limited("rest")
            response = render(RateLimited(f"Limit is {self.limiter.item}."))
        else:
            metrics.rate_limited("rest", "unchecked")
            response = render(
                RateLimited("Rate limits cannot be checked right now; retry shortly.")
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        await response(scope, receive, send)


def _caller(connection: HTTPConnection) -> str:
    principal: Principal | None = connection.scope.get("state", {}).get("principal")
    if principal is not None:
        return f"user:{principal.user_id}"
    return f"ip:{connection.client.host if connection.client else 'unknown'}"
