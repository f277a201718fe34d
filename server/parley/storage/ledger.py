"""The end of a reply, written in one transaction, and the reports read from it.

A reply's assistant message, its upstream calls (``llm_usage``) and the rule
actions taken (``rule_events``) land together or not at all, so a usage row
never points at a message still marked ``streaming``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from parley.llm.base import CallRecord, ModelRef
from parley.rules import RuleEvent


@dataclass(frozen=True, slots=True)
class ReplyTotals:
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    estimated: bool

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def public(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "estimated": self.estimated,
        }

    @classmethod
    def of(cls, calls: Sequence[CallRecord]) -> ReplyTotals:
        return cls(
            prompt_tokens=sum(call.prompt_tokens for call in calls),
            completion_tokens=sum(call.completion_tokens for call in calls),
            cost_usd=sum(call.cost_usd for call in calls),
            estimated=any(call.estimated for call in calls),
        )


@dataclass(frozen=True, slots=True)
class FinishedReply:
    reply_id: UUID
    user_id: str
    conversation_id: UUID
    agent_id: str
    text: str
    status: str
    calls: Sequence[CallRecord] = ()
    events: Sequence[RuleEvent] = ()
    needs_human: bool = False
    stored_calls: int = 0  # calls[:stored_calls] already have their usage rows (tool rounds)

    @property
    def totals(self) -> ReplyTotals:
        return ReplyTotals.of(self.calls)


_CALL_COLUMNS = (
    "text",
    "text",
    "int",
    "int",
    "int",
    "numeric",
    "bool",
    "int",
    "int",
    "text",
    "text",
    "text",
)
# _call_params: the user, the agent, then one array per column.
_CALL_PARAMS = 2 + len(_CALL_COLUMNS)


def _insert_calls(first: int) -> str:
    """One llm_usage row per call, for the message in the CTE ``answer``: the
    ``_CALL_PARAMS`` parameters from ``$first`` on are :func:`_call_params`."""
    arrays = ", ".join(f"${first + 2 + i}::{kind}[]" for i, kind in enumerate(_CALL_COLUMNS))
    return (
        "INSERT INTO llm_usage (user_id, conversation_id, message_id, agent_id, provider,"
        " model, prompt_tokens, completion_tokens, total_tokens, cost_usd, estimated,"
        " ttft_ms, latency_ms, status, error, purpose)"
        f" SELECT ${first}, answer.conversation_id, answer.id, ${first + 1}, c.* FROM answer,"
        f" unnest({arrays}) c"
    )


def _call_params(user_id: str, agent_id: str, calls: Sequence[CallRecord]) -> list[Any]:
    return [
        user_id,
        agent_id,
        [c.model.provider for c in calls],
        [c.model.name for c in calls],
        [c.prompt_tokens for c in calls],
        [c.completion_tokens for c in calls],
        [c.total_tokens for c in calls],
        [Decimal(str(c.cost_usd)) for c in calls],
        [c.estimated for c in calls],
        [c.ttft_ms for c in calls],
        [c.latency_ms for c in calls],
        [c.status for c in calls],
        [c.error for c in calls],
        [c.purpose for c in calls],
    ]


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def finish(self, reply: FinishedReply) -> UUID | None:
        """Store the reply's final state; ``None`` if it was already final.

        Only a row still ``streaming`` is updated, so a reply finished twice
        (its task and a sweeper racing) is recorded exactly once.
        """
        totals = reply.totals
        events = reply.events
        after = 9 + _CALL_PARAMS  # the first parameter after the calls'
        # One statement: one round trip, and atomic without a transaction block.
        message_id: UUID | None = await self.pool.fetchval(
            "WITH answer AS ("
            "  UPDATE messages SET content = $2, status = $3, prompt_tokens = $4,"
            "  completion_tokens = $5, total_tokens = $6, cost_usd = $7, estimated = $8,"
            "  completed_at = now() WHERE reply_id = $1 AND status = 'streaming'"
            "  RETURNING id, conversation_id, reply_to),"
            # A classifier rule blocks a turn stored as accepted while it judged:
            # its question is marked too, so it never goes into a later prompt.
            " question AS ("
            "  UPDATE messages SET status = 'blocked' WHERE $3 = 'blocked'"
            "  AND id = (SELECT reply_to FROM answer) AND status <> 'blocked'),"
            f" calls AS ({_insert_calls(9)}),"
            " events AS ("
            "  INSERT INTO rule_events (conversation_id, message_id, rule, action, detail)"
            "  SELECT answer.conversation_id, answer.id, e.* FROM answer,"
            f"  unnest(${after}::text[], ${after + 1}::text[], ${after + 2}::text[]) e),"
            " touched AS ("
            "  UPDATE conversations SET updated_at = now(),"
            f"  needs_human = needs_human OR ${after + 3}"
            "  WHERE id = (SELECT conversation_id FROM answer))"
            " SELECT id FROM answer",
            reply.reply_id,
            reply.text,
            reply.status,
            totals.prompt_tokens,
            totals.completion_tokens,
            totals.total_tokens,
            totals.cost_usd,
            totals.estimated,
            *_call_params(reply.user_id, reply.agent_id, reply.calls[reply.stored_calls :]),
            [e.rule for e in events],
            [e.action for e in events],
            [e.detail for e in events],
            reply.needs_human,
        )
        return message_id

    async def add_calls(
        self, reply_id: UUID, user_id: str, agent_id: str, calls: Sequence[CallRecord]
    ) -> None:
        """Usage rows of calls made so far, while the reply goes on (before its tools run)."""
        await self.pool.execute(
            "WITH answer AS (SELECT id, conversation_id FROM messages WHERE reply_id = $1)"
            f" {_insert_calls(2)}",
            reply_id,
            *_call_params(user_id, agent_id, calls),
        )

    async def calls_of(self, reply_id: UUID) -> list[CallRecord]:
        """The usage rows already stored for a reply, as records (for the sweeper)."""
        rows = await self.pool.fetch(
            "SELECT u.* FROM llm_usage u JOIN messages m ON m.id = u.message_id"
            " WHERE m.reply_id = $1 ORDER BY u.id",
            reply_id,
        )
        return [
            CallRecord(
                model=ModelRef(row["provider"], row["model"]),
                status=row["status"],
                prompt_tokens=row["prompt_tokens"],
                completion_tokens=row["completion_tokens"],
                estimated=row["estimated"],
                cost_usd=float(row["cost_usd"]),
                ttft_ms=row["ttft_ms"],
                latency_ms=row["latency_ms"],
                error=row["error"],
                purpose=row["purpose"],
            )
            for row in rows
        ]

    async def usage_report(self, user_id: str, *, days: int = 30) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, agent_id, provider, model,"
            " count(*) AS calls, sum(prompt_tokens) AS prompt_tokens,"
            " sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens,"
            " sum(cost_usd) AS cost_usd, bool_or(estimated) AS estimated"
            " FROM llm_usage WHERE user_id = $1"
            " AND created_at >= now() - make_interval(days => $2)"
            " GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC, 2, 3, 4",
            user_id,
            days,
        )
        return [
            {
                "day": row["day"].isoformat(),
                "agent_id": row["agent_id"],
                "model": f"{row['provider']}:{row['model']}",
                "calls": row["calls"],
                "prompt_tokens": row["prompt_tokens"],
                "completion_tokens": row["completion_tokens"],
                "total_tokens": row["total_tokens"],
                "cost_usd": float(row["cost_usd"]),
                "estimated": row["estimated"],
            }
            for row in rows
        ]

    async def handoffs(self, *, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT e.id, e.conversation_id, e.message_id, e.rule, e.detail, e.created_at,"
            " c.owner_id, c.agent_id, c.title FROM rule_events e"
            " JOIN conversations c ON c.id = e.conversation_id"
            " WHERE e.action = 'handoff' ORDER BY e.created_at DESC LIMIT $1",
            limit,
        )
        return [
            {
                "id": row["id"],
                "conversation_id": str(row["conversation_id"]),
                "message_id": str(row["message_id"]) if row["message_id"] else None,
                "user_id": row["owner_id"],
                "agent_id": row["agent_id"],
                "title": row["title"],
                "rule": row["rule"],
                "detail": row["detail"],
                "created_at": row["created_at"].isoformat(),
            }
            for row in rows
        ]

    async def stale_streaming(self, older_than_seconds: float) -> list[UUID]:
        """Replies still ``streaming`` in Postgres long after they started."""
        rows = await self.pool.fetch(
            "SELECT reply_id FROM messages WHERE status = 'streaming'"
            " AND created_at < now() - make_interval(secs => $1)",
            older_than_seconds,
        )
        return [row["reply_id"] for row in rows]
