"""How often guest tokens may be asked for: per client address and per embedding site.

Counted in Redis with the ``limits`` library (moving windows), like the REST
limit in :mod:`parley.transport.ratelimit`, and failing closed the same way
unless ``PARLEY_RATE_LIMIT_FAIL_OPEN``. Keys carry ``PARLEY_REDIS_PREFIX``.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from parley.errors import RateLimited
from parley.observability import metrics
from parley.transport.ratelimit import RETRY_AFTER_SECONDS, limits_storage

log = logging.getLogger(__name__)

POOL_SIZE = 64


class GuestLimitReached(RateLimited):
    """Refused by a guest limit; ``retry_after`` seconds until one more is allowed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GuestRateLimits:
    def __init__(
        self,
        redis_url: str,
        *,
        per_ip: str,
        per_site: str,
        namespace: str,
        fail_open: bool = False,
    ) -> None:
        self.per_ip: RateLimitItem = parse(per_ip)
        self.per_site: RateLimitItem = parse(per_site)
        self._namespace = namespace  # Keys.guest_rate_limits
        self._fail_open = fail_open
        self._limiter = MovingWindowRateLimiter(limits_storage(redis_url, POOL_SIZE))

    async def check(self, ip: str, site: str) -> None:
        """Count one request from ``ip`` on ``site``; ``GuestLimitReached`` when over a limit."""
        try:
            for item, kind, key in ((self.per_ip, "ip", ip), (self.per_site, "site", site)):
                if not await self._limiter.hit(item, self._namespace, kind, key):
                    metrics.rate_limited("rest", f"guest_{kind}")
                    raise GuestLimitReached(
                        f"Too many guest tokens asked for from this {_WHO[kind]}; "
                        f"the limit is {item}.",
                        await self._retry_after(item, kind, key),
                    )
        except StorageError as error:
            metrics.storage_error("redis", "rate_limit")
            if self._fail_open:
                return
            log.warning("guest rate limits cannot be checked (Redis: %s); refusing", error)
            raise GuestLimitReached(
                "Rate limits cannot be checked right now; retry shortly.", RETRY_AFTER_SECONDS
            ) from None

    async def _retry_after(self, item: RateLimitItem, kind: str, key: str) -> int:
        stats = await self._limiter.get_window_stats(item, self._namespace, kind, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


_WHO = {"ip": "address", "site": "site"}
