"""Delivering the handoff webhook: stored first, sent in the background, retried.

A delivery is written in the same transaction as the handoff it reports, so
it exists exactly when the handoff does. A worker on every instance claims
due deliveries with a lease (``FOR UPDATE SKIP LOCKED``: never two instances
on one attempt; a claim whose instance died expires), posts them, and
records every attempt. A failure or a non-2xx answer is retried after
``base_delay * 2**(attempt - 1)`` seconds (at most an hour) until
``max_attempts`` have been made; then the delivery is ``failed``. Nothing
here runs on a reply's path: a slow or dead receiver never delays one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from parley import __version__
from parley.operators.store import OpenedHandoff
from parley.operators.webhook import SIGNATURE_HEADER, WebhookTarget, body, signature

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # to pick up deliveries another instance left (it died, or lost a race)
CLAIM_SECONDS = 60  # a claimed delivery is retried by anyone after this long
BATCH = 10
MAX_DELAY_SECONDS = 3600.0
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_delay: float

    def delay(self, attempt: int) -> float:
        """Seconds before the attempt after ``attempt`` (1 for the first)."""
        return float(min(self.base_delay * 2 ** (attempt - 1), MAX_DELAY_SECONDS))


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    url: str
    body: str
    attempts: int


class WebhookDeliveries:
    def __init__(
        self, pool: asyncpg.Pool, target: WebhookTarget | None, policy: RetryPolicy
    ) -> None:
        self.pool = pool
        self.target = target
        self.policy = policy
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None

    # -- enqueueing (inside the handoff's transaction) ---------------------------------

    async def enqueue(self, connection: asyncpg.Connection, handoff: OpenedHandoff) -> None:
        if self.target is None:
            return
        await connection.execute(
            "INSERT INTO webhook_deliveries (handoff_id, conversation_id, url, body)"
            " VALUES ($1, $2, $3, $4)",
            handoff.id,
            handoff.request.conversation_id,
            self.target.url,
            body(handoff, self.target),
        )

    def wake(self) -> None:
        """A delivery was stored here: send it now rather than at the next poll."""
        self._wake.set()

    # -- the worker ------------------------------------------------------------------

    def start(self) -> None:
        if self.target is None:
            return
        # No redirects: the configured URL is the only place a handoff may go.
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        )
        self._task = asyncio.create_task(self._run(), name="handoff-webhook")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake-up during the work is not lost
            try:
                due = await self._claim()
                await asyncio.gather(*(self._attempt(delivery) for delivery in due))
                pause = 0.0 if len(due) == BATCH else await self._until_next()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Postgres away: try again later
                log.warning("handoff webhook: %s", error)
                pause = POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _claim(self) -> list[_Due]:
        rows = await self.pool.fetch(
            "UPDATE webhook_deliveries SET locked_until = now() + make_interval(secs => $1)"
            " WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending'"
            "  AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())"
            "  ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, url, body, attempts",
            CLAIM_SECONDS,
            BATCH,
        )
        return [_Due(row["id"], row["url"], row["body"], row["attempts"]) for row in rows]

    async def _until_next(self) -> float:
        seconds = await self.pool.fetchval(
            "SELECT extract(epoch FROM min(greatest(next_attempt_at, locked_until)) - now())"
            " FROM webhook_deliveries WHERE status = 'pending'"
        )
        if seconds is None:
            return POLL_SECONDS
        return max(0.0, min(float(seconds), POLL_SECONDS))

    async def _attempt(self, delivery: _Due) -> None:
        assert self.target is not None and self._client is not None
        attempt = delivery.attempts + 1
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Parley/{__version__}",
            SIGNATURE_HEADER: signature(self.target.secret, delivery.body, int(time.time())),
            "Parley-Delivery": str(delivery.id),
            "Parley-Attempt": str(attempt),
        }
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            # The body of the answer is never read: a receiver's answer is not ours to hold.
            async with self._client.post(
                delivery.url,
                data=delivery.body.encode(),
                headers=headers,
                allow_redirects=False,  # the configured URL is the only place it may go
            ) as response:
                status_code = response.status
        except (aiohttp.ClientError, TimeoutError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:300]
        if status_code is not None and not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
        elapsed_ms = int((time.monotonic() - started) * 1000)
        await self._record(delivery.id, attempt, status_code, error, elapsed_ms)

    async def _record(
        self, delivery_id: int, attempt: int, status_code: int | None, error: str | None, ms: int
    ) -> None:
        if error is None:
            status = "delivered"
        elif attempt >= self.policy.max_attempts:
            status = "failed"
            log.warning("handoff webhook delivery %d failed for good: %s", delivery_id, error)
        else:
            status = "pending"
            log.info(
                "handoff webhook delivery %d: attempt %d failed: %s", delivery_id, attempt, error
            )
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error,"
                " duration_ms) VALUES ($1, $2, $3, $4, $5)",
                delivery_id,
                attempt,
                status_code,
                error,
                ms,
            )
            await connection.execute(
                "UPDATE webhook_deliveries SET attempts = $2, status = $3, last_status = $4,"
                " last_error = $5, locked_until = NULL,"
                " next_attempt_at = now() + make_interval(secs => $6),"
                " finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END WHERE id = $1",
                delivery_id,
                attempt,
                status,
                status_code,
                error,
                self.policy.delay(attempt),
            )

    # -- reading (admins) ------------------------------------------------------------

    async def recent(self, *, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM webhook_deliveries ORDER BY id DESC LIMIT $1", limit
        )
        attempts = await self.pool.fetch(
            "SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1::bigint[]) ORDER BY id",
            [row["id"] for row in rows],
        )
        by_delivery: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
        for attempt in attempts:
            by_delivery[attempt["delivery_id"]].append(
                {
                    "attempt": attempt["attempt"],
                    "status_code": attempt["status_code"],
                    "error": attempt["error"],
                    "duration_ms": attempt["duration_ms"],
                    "at": attempt["attempted_at"].isoformat(),
                }
            )
        return [_public(row, by_delivery[row["id"]]) for row in rows]


def _public(row: asyncpg.Record, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    def when(name: str) -> str | None:
        value = row[name]
        return value.isoformat() if value is not None else None

    pending = row["status"] == "pending"
    return {
        "id": row["id"],
        "handoff_id": row["handoff_id"],
        "conversation_id": str(row["conversation_id"]) if row["conversation_id"] else None,
        "url": row["url"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": when("next_attempt_at") if pending else None,
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": when("created_at"),
        "finished_at": when("finished_at"),
        "payload": json.loads(row["body"]),
        "attempt_log": attempts,
    }
