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

from parley.llm.base import CallRecord
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

    @property
    def totals(self) -> ReplyTotals:
        return ReplyTotals.of(self.calls)


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def finish(self, reply: FinishedReply) -> UUID | None:
        """Store the reply's final state; ``None`` if it was already final.

        Only a row still ``streaming`` is updated, so a reply finished twice
        (its task and a sweeper racing) is recorded exactly once.
        """
        totals = reply.totals
        calls = reply.calls
        events = reply.events
        # One statement: one round trip, and atomic without a transaction block.
        message_id: UUID | None = await self.pool.fetchval(
            "WITH answer AS ("
            "  UPDATE messages SET content = $2, status = $3, prompt_tokens = $4,"
            "  completion_tokens = $5, total_tokens = $6, cost_usd = $7, estimated = $8,"
            "  completed_at = now() WHERE reply_id = $1 AND status = 'streaming'"
            "  RETURNING id, conversation_id),"
            " calls AS ("
            "  INSERT INTO llm_usage (user_id, conversation_id, message_id, agent_id, provider,"
            "  model, prompt_tokens, completion_tokens, total_tokens, cost_usd, estimated,"
            "  ttft_ms, latency_ms, status, error)"
            "  SELECT $9, answer.conversation_id, answer.id, $10, c.* FROM answer,"
            "  unnest($11::text[], $12::text[], $13::int[], $14::int[], $15::int[],"
            "  $16::numeric[], $17::bool[], $18::int[], $19::int[], $20::text[], $21::text[]) c),"
            " events AS ("
            "  INSERT INTO rule_events (conversation_id, message_id, rule, action, detail)"
            "  SELECT answer.conversation_id, answer.id, e.* FROM answer,"
            "  unnest($22::text[], $23::text[], $24::text[]) e),"
            " touched AS ("
            "  UPDATE conversations SET updated_at = now(), needs_human = needs_human OR $25"
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
            reply.user_id,
            reply.agent_id,
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
            [e.rule for e in events],
            [e.action for e in events],
            [e.detail for e in events],
            reply.needs_human,
        )
        return message_id

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
