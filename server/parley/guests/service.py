"""Admitting guests: a rate-limited token for one agent, under a signed guest id."""

from __future__ import annotations

from dataclasses import dataclass

from parley.catalog import Agent
from parley.config import Settings
from parley.guests.identity import GuestIds
from parley.guests.keys import derived_key, guest_secret
from parley.guests.limits import GuestRateLimits
from parley.guests.tokens import GuestTokens
from parley.storage.keys import Keys
from parley.storage.redis import RedisClient


@dataclass(frozen=True)
class GuestPass:
    """What ``POST /v1/guest`` answers."""

    token: str
    expires_at: int
    guest_id: str
    agent: str


class Guests:
    def __init__(self, ids: GuestIds, tokens: GuestTokens, limits: GuestRateLimits) -> None:
        self.ids = ids
        self.tokens = tokens
        self.limits = limits

    @classmethod
    async def start(cls, settings: Settings, redis: RedisClient) -> Guests:
        assert settings.redis_url is not None
        keys = Keys(settings.redis_prefix)
        secret = await guest_secret(settings.guest_secret, redis, keys.guest_secret)
        return cls(
            GuestIds(derived_key(secret, "ids")),
            GuestTokens(
                derived_key(secret, "tokens"), ttl_seconds=settings.guest_token_ttl_seconds
            ),
            GuestRateLimits(
                settings.redis_url,
                per_ip=settings.guest_rate_limit_ip,
                per_site=settings.guest_rate_limit_site,
                namespace=keys.guest_rate_limits,
                fail_open=settings.rate_limit_fail_open,
            ),
        )

    async def admit(self, agent: Agent, guest_id: str | None, *, ip: str, site: str) -> GuestPass:
        """A token for ``agent`` (which must take guests), as the guest of ``guest_id``
        or a new one. Every request counts against the limits of ``ip`` and ``site``,
        those with an id that does not check out too (guessing ids costs as much)."""
        agent.for_guest()  # Forbidden if it does not take guests
        await self.limits.check(ip, site)
        if guest_id is None:
            guest_id = self.ids.issue()
        user_id = self.ids.user_id(guest_id)
        token, expires_at = self.tokens.mint(user_id, agent.id)
        return GuestPass(token=token, expires_at=expires_at, guest_id=guest_id, agent=agent.id)
