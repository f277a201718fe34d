"""Daily token budgets against the real Redis: atomic, settled, fail-closed."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from parley.errors import BudgetExceeded
from parley.storage.budget import KEY_TTL_SECONDS, Reservation, TokenBudget
from parley.storage.keys import Keys

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards (never a flush)."""
    name = f"test-budget-{uuid.uuid4().hex}"
    yield name
    keys = [key async for key in redis.scan_iter(match=f"{name}:*")]
    if keys:
        await redis.delete(*keys)


def fixed_clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


async def test_reserve_then_settle_to_real_usage(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    reservation = await budget.reserve("u1", "finance", 500, limit=1000)
    assert await budget.used_today("u1", "finance") == 500
    await budget.settle(reservation, 120)
    assert await budget.used_today("u1", "finance") == 120
    assert await budget.used_today("u2", "finance") == 0  # per user
    assert await budget.used_today("u1", "support") == 0  # per domain


async def test_settle_is_applied_once(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    reservation = await budget.reserve("u1", "finance", 300, limit=1000)
    await budget.settle(reservation, 100)
    await budget.settle(reservation, 100)
    assert await budget.used_today("u1", "finance") == 100


async def test_settling_at_nothing_gives_everything_back(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    reservation = await budget.reserve("u1", "finance", 300, limit=1000)
    await budget.settle(reservation, 0)
    assert await budget.used_today("u1", "finance") == 0


async def test_settle_above_the_estimate_is_counted(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    reservation = await budget.reserve("u1", "finance", 300, limit=1000)
    await budget.settle(reservation, 450)
    assert await budget.used_today("u1", "finance") == 450


async def test_over_budget_is_refused_and_nothing_is_held(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    await budget.reserve("u1", "finance", 800, limit=1000)
    with pytest.raises(BudgetExceeded) as raised:
        await budget.reserve("u1", "finance", 300, limit=1000)
    assert "800 of 1000" in raised.value.message
    assert await budget.used_today("u1", "finance") == 800
    await budget.reserve("u1", "finance", 200, limit=1000)  # exactly up to the limit is fine
    assert await budget.used_today("u1", "finance") == 1000


async def test_request_larger_than_the_whole_budget(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    with pytest.raises(BudgetExceeded, match="needs up to 5000 tokens"):
        await budget.reserve("u1", "finance", 5000, limit=1000)


async def test_unlimited_domains_touch_nothing(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    reservation = await budget.reserve("u1", "support", 10**9, limit=None)
    await budget.settle(reservation, 10**6)
    assert [key async for key in redis.scan_iter(match=f"{prefix}:*")] == []


async def test_concurrent_reservations_never_overspend(redis: Redis, prefix: str) -> None:
    # Two budgets on two connections stand in for two server instances.
    other = Redis.from_url(REDIS_URL)
    try:
        budgets = [TokenBudget(redis, Keys(prefix)), TokenBudget(other, Keys(prefix))]

        async def attempt(index: int) -> Reservation | None:
            try:
                return await budgets[index % 2].reserve("u1", "finance", 30, limit=1000)
            except BudgetExceeded:
                return None

        results = await asyncio.gather(*(attempt(i) for i in range(50)))
    finally:
        await other.aclose()
    granted = [r for r in results if r is not None]
    assert len(granted) == 33  # 33 * 30 = 990; a 34th would make 1020
    assert await budgets[0].used_today("u1", "finance") == 990


async def test_concurrent_settles_and_reserves_stay_consistent(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    first = await asyncio.gather(*(budget.reserve("u1", "d", 100, limit=5000) for _ in range(20)))
    await asyncio.gather(*(budget.settle(r, 10) for r in first))
    assert await budget.used_today("u1", "d") == 200
    second = await asyncio.gather(
        *(budget.reserve("u1", "d", 100, limit=5000) for _ in range(48)), return_exceptions=True
    )
    assert sum(isinstance(r, Reservation) for r in second) == 48
    assert await budget.used_today("u1", "d") == 5000


async def test_days_are_separate_and_settle_goes_to_the_reserved_day(
    redis: Redis, prefix: str
) -> None:
    monday = TokenBudget(
        redis, Keys(prefix), clock=fixed_clock(datetime(2025, 3, 10, 23, 59, tzinfo=UTC))
    )
    tuesday = TokenBudget(
        redis, Keys(prefix), clock=fixed_clock(datetime(2025, 3, 11, 0, 1, tzinfo=UTC))
    )
    late = await monday.reserve("u1", "finance", 900, limit=1000)
    # A new UTC day starts with a fresh budget.
    await tuesday.reserve("u1", "finance", 900, limit=1000)
    await tuesday.settle(late, 100)  # settled after midnight: still Monday's tokens
    assert await monday.used_today("u1", "finance") == 100
    assert await tuesday.used_today("u1", "finance") == 900


async def test_keys_expire(redis: Redis, prefix: str) -> None:
    budget = TokenBudget(redis, Keys(prefix))
    await budget.reserve("u1", "finance", 10, limit=100)
    ttl = await redis.ttl(budget.key("u1", "finance"))
    assert 0 < ttl <= KEY_TTL_SECONDS


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_redis_fails_closed() -> None:
    # No retries, so the test does not wait out the client's default backoff.
    client = Redis(host="127.0.0.1", port=closed_port(), retry=Retry(NoBackoff(), 0))
    try:
        budget = TokenBudget(client, Keys("unreachable"))
        with pytest.raises(BudgetExceeded, match="could not be checked"):
            await budget.reserve("u1", "finance", 10, limit=1000)
        with pytest.raises(BudgetExceeded, match="could not be checked"):
            await budget.used_today("u1", "finance")
        # Settling cannot fail a finished reply; the held worst case simply stays.
        await budget.settle(Reservation("u1", "finance", 10, key="unreachable:k"), 5)
        # Unlimited domains need no Redis at all.
        await budget.reserve("u1", "support", 10, limit=None)
    finally:
        await client.aclose()


async def test_negative_token_counts_are_rejected(redis: Redis, prefix: str) -> None:
    with pytest.raises(ValueError):
        await TokenBudget(redis, Keys(prefix)).reserve("u1", "finance", -1, limit=10)
