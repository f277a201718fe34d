"""Per-user daily token budgets, shared by every server instance through Redis.

Before a model call the caller reserves the worst case (prompt tokens plus
the reply cap); a Lua script checks and adds atomically, so concurrent turns
on any number of instances can never spend past the limit together. After
the call the reservation is settled to the real usage. Budgets fail closed:
if Redis cannot be reached the turn is refused rather than left unmetered.

Counters are kept per user, domain and UTC day (:meth:`Keys.budget`) and
expire two days later, so a settle just after midnight still finds its day.
The limits themselves are the rule sets' (``limits.daily_token_budget``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from parley.errors import BudgetExceeded
from parley.observability import metrics
from parley.storage.keys import Keys
from parley.storage.redis import RedisClient

log = logging.getLogger(__name__)

KEY_TTL_SECONDS = 2 * 86_400

# KEYS[1] counter; ARGV: tokens, limit, ttl. Returns {granted (0/1), used after}.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local tokens = tonumber(ARGV[1])
if used + tokens > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], tokens)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""

# KEYS[1] counter; ARGV: delta. Never recreates an expired day, never goes below 0.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used < 0 then
  redis.call('SET', KEYS[1], 0, 'KEEPTTL')
  used = 0
end
return used
"""

_UNREACHABLE = "Your token budget could not be checked right now; try again shortly."


@dataclass
class Reservation:
    """Tokens held for one model call until :meth:`TokenBudget.settle`."""

    user_id: str
    domain: str
    tokens: int
    key: str | None  # None when the domain is unlimited: nothing was held
    settled: bool = field(default=False, compare=False)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TokenBudget:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def key(self, user_id: str, domain: str) -> str:
        day = self._clock().astimezone(UTC).date().isoformat()
        return self._keys.budget(domain, day, user_id)

    async def reserve(
        self, user_id: str, domain: str, tokens: int, limit: int | None
    ) -> Reservation:
        """Hold ``tokens`` of today's budget or raise :class:`BudgetExceeded`.

        ``limit=None`` means unlimited: nothing is stored and Redis is not asked.
        """
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if limit is None:
            return Reservation(user_id, domain, tokens, key=None)
        if tokens > limit:
            metrics.budget_refused(domain, "too_large")
            raise BudgetExceeded(
                f"This request needs up to {tokens} tokens but the daily budget is {limit}."
            )
        key = self.key(user_id, domain)
        try:
            granted, used = await self._reserve(keys=[key], args=[tokens, limit, KEY_TTL_SECONDS])
        except (RedisError, OSError) as error:
            log.warning("token budget check failed, refusing the turn: %s", error)
            metrics.storage_error("redis", "budget")
            metrics.budget_refused(domain, "unavailable")
            raise BudgetExceeded(_UNREACHABLE) from error
        if not granted:
            metrics.budget_refused(domain, "exhausted")
            raise BudgetExceeded(
                f"Your daily token budget is used up ({int(used)} of {limit} tokens); "
                "it resets at midnight UTC."
            )
        return Reservation(user_id, domain, tokens, key=key)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the reserved worst case by what the call really used.

        A failed settle is logged, not raised: the reply is already delivered,
        and the worst case stays counted, so the error only ever over-counts.
        """
        if reservation.settled or reservation.key is None:
            reservation.settled = True
            return
        reservation.settled = True
        delta = max(actual_tokens, 0) - reservation.tokens
        if delta == 0:
            return
        try:
            await self._settle(keys=[reservation.key], args=[delta])
        except (RedisError, OSError) as error:
            log.warning("token budget settle failed; the reservation stays counted: %s", error)
            metrics.storage_error("redis", "budget")

    async def used_today(self, user_id: str, domain: str) -> int:
        try:
            value: Any = await self._redis.get(self.key(user_id, domain))
        except (RedisError, OSError) as error:
            raise BudgetExceeded(_UNREACHABLE) from error
        return int(value or 0)
