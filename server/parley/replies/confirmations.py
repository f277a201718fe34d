"""The user's approval of a tool call, given on any instance, heard by the reply's owner.

A reply that needs approval marks the call ``pending`` in Redis and waits.
An answer is accepted only while the mark says ``pending`` (a Lua script
makes check-and-set atomic, so the first answer wins and a late one is
refused), then announced on the control channel so the owner wakes at
once. The owner also re-reads the mark now and then: pub/sub delivers at
most once, and a message lost in a reconnect must not leave a user's
approval unheard.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging

from parley.storage.keys import Keys
from parley.storage.redis import RedisClient, as_text

log = logging.getLogger(__name__)

PENDING = "pending"
# How often a waiting reply re-reads its mark, in case an announcement was lost.
RECHECK_SECONDS = 2.0

# KEYS[1] the mark; ARGV: answer, channel, announcement. 1 if taken, else 0.
_ANSWER = """
if redis.call('GET', KEYS[1]) ~= 'pending' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""

# KEYS[1] the mark. 1 if it was still pending (now timed out), else 0.
_EXPIRE = """
if redis.call('GET', KEYS[1]) ~= 'pending' then return 0 end
redis.call('SET', KEYS[1], 'timeout:', 'KEEPTTL')
return 1
"""


class Decision(enum.Enum):
    APPROVED = "approved"
    DECLINED = "declined"
    TIMED_OUT = "timed out"
    STOPPED = "stopped"  # the reply was cancelled or interrupted while waiting


class Confirmations:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._answer = redis.register_script(_ANSWER)
        self._expire_mark = redis.register_script(_EXPIRE)
        self._waiting: dict[tuple[str, str], asyncio.Event] = {}

    async def answer(self, reply_id: str, call_id: str, *, approve: bool, by: str) -> bool:
        """Record the user's answer; ``False`` if the call is not waiting for one."""
        announcement = json.dumps({"confirm": reply_id, "call_id": call_id})
        taken = await self._answer(
            keys=[self._keys.confirmation(reply_id, call_id)],
            args=[_encode(approve, by), self._keys.control_channel, announcement],
        )
        return bool(taken)

    def announced(self, reply_id: str, call_id: str) -> None:
        """Wake the reply waiting for this call, if it runs here."""
        waiting = self._waiting.get((reply_id, call_id))
        if waiting is not None:
            waiting.set()

    async def wait(
        self, reply_id: str, call_id: str, *, within: float, stop: asyncio.Event
    ) -> tuple[Decision, str | None]:
        """Wait up to ``within`` seconds for the user's answer: the decision and who gave it."""
        key = self._keys.confirmation(reply_id, call_id)
        await self._redis.set(key, PENDING, ex=int(within) + 3600)
        woken = self._waiting[(reply_id, call_id)] = asyncio.Event()
        deadline = asyncio.get_running_loop().time() + within
        try:
            while True:
                answered = await self._read(key)
                if answered is not None:
                    return answered
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return await self._expire(key)
                if stop.is_set():
                    return Decision.STOPPED, None
                await _first_of(woken, stop, within=min(left, RECHECK_SECONDS))
                woken.clear()
        finally:
            self._waiting.pop((reply_id, call_id), None)

    async def _read(self, key: str) -> tuple[Decision, str | None] | None:
        value = await self._redis.get(key)
        return None if value is None or as_text(value) == PENDING else _decode(as_text(value))

    async def _expire(self, key: str) -> tuple[Decision, str | None]:
        """Time is up, unless an answer slipped in at the last moment."""
        if await self._expire_mark(keys=[key]):
            return Decision.TIMED_OUT, None
        return await self._read(key) or (Decision.TIMED_OUT, None)


def _encode(approve: bool, by: str) -> str:
    return f"{'approve' if approve else 'decline'}:{by}"


def _decode(value: str) -> tuple[Decision, str | None]:
    verdict, _, by = value.partition(":")
    if verdict == "approve":
        return Decision.APPROVED, by
    if verdict == "decline":
        return Decision.DECLINED, by
    return Decision.TIMED_OUT, None


async def _first_of(*events: asyncio.Event, within: float) -> None:
    """Return when one of the events is set, or after ``within`` seconds."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
