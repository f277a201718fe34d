"""Tool calls in Postgres: written as they happen, read back with the history.

A call's row is inserted when the loop decides what to do with it and
updated with its outcome before the model continues. For a side-effecting
call the insert happens before it runs and is conditional: a second insert
for the same ``(reply_id, call_id)`` finds the first and runs nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from parley.storage.records import ToolStep

# A call still in one of these when its reply was interrupted never finished here.
UNFINISHED = ("awaiting_confirmation", "running")


@dataclass(frozen=True, slots=True)
class ToolCallRow:
    """One call as the reply loop records it."""

    reply_id: UUID
    conversation_id: UUID
    call_id: str
    round: int
    tool: str
    arguments: Any
    status: str
    side_effects: bool


class ToolCallStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def begin(self, row: ToolCallRow) -> bool:
        """Record a call about to be confirmed or run; ``False`` if it was recorded before."""
        return await self._insert(row)

    async def update(
        self,
        reply_id: UUID,
        call_id: str,
        *,
        status: str,
        arguments: Any = None,
        decided_by: str | None = None,
    ) -> None:
        """Move a call on (confirmed, running) without an outcome yet."""
        await self.pool.execute(
            "UPDATE tool_calls SET status = $3, arguments = coalesce($4::jsonb, arguments),"
            " decided_by = coalesce($5, decided_by) WHERE reply_id = $1 AND call_id = $2",
            reply_id,
            call_id,
            status,
            None if arguments is None else json.dumps(arguments),
            decided_by,
        )

    async def finish(
        self, reply_id: UUID, call_id: str, *, status: str, summary: str, result: str
    ) -> None:
        await self.pool.execute(
            "UPDATE tool_calls SET status = $3, summary = $4, result = $5, finished_at = now()"
            " WHERE reply_id = $1 AND call_id = $2",
            reply_id,
            call_id,
            status,
            summary,
            result,
        )

    async def record(self, row: ToolCallRow, *, summary: str, result: str) -> None:
        """A call decided without running (refused, invalid): one finished row."""
        await self._insert(row, summary=summary, result=result)

    async def _insert(
        self, row: ToolCallRow, *, summary: str = "", result: str | None = None
    ) -> bool:
        """Insert the row unless ``(reply_id, call_id)`` exists; finished if it has a result."""
        inserted = await self.pool.fetchval(
            "INSERT INTO tool_calls (reply_id, conversation_id, call_id, round, tool, arguments,"
            " status, side_effects, summary, result, finished_at)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10,"
            " CASE WHEN $10::text IS NULL THEN NULL ELSE now() END)"
            " ON CONFLICT (reply_id, call_id) DO NOTHING RETURNING id",
            row.reply_id,
            row.conversation_id,
            row.call_id,
            row.round,
            row.tool,
            json.dumps(row.arguments),
            row.status,
            row.side_effects,
            summary,
            result,
        )
        return inserted is not None

    async def unfinished(self, reply_id: UUID) -> bool:
        """Whether a call of the reply is still waiting or running."""
        found = await self.pool.fetchval(
            "SELECT EXISTS (SELECT FROM tool_calls WHERE reply_id = $1"
            " AND status = ANY($2::text[]))",
            reply_id,
            list(UNFINISHED),
        )
        return bool(found)

    async def interrupt(self, reply_id: UUID) -> list[ToolStep]:
        """Close the reply's unfinished calls as ``interrupted``; returns them."""
        rows = await self.pool.fetch(
            "UPDATE tool_calls SET status = 'interrupted', finished_at = now(),"
            " summary = CASE WHEN status = 'running' AND side_effects"
            "   THEN 'Interrupted while running: it may have taken effect.'"
            "   ELSE 'Interrupted before it ran.' END"
            " WHERE reply_id = $1 AND status = ANY($2::text[]) RETURNING *",
            reply_id,
            list(UNFINISHED),
        )
        return [ToolStep.from_row(row) for row in sorted(rows, key=lambda r: r["id"])]

    async def for_reply(self, reply_id: UUID) -> list[ToolStep]:
        rows = await self.pool.fetch(
            "SELECT * FROM tool_calls WHERE reply_id = $1 ORDER BY id", reply_id
        )
        return [ToolStep.from_row(row) for row in rows]

    async def for_conversation(self, conversation_id: UUID) -> dict[UUID, list[ToolStep]]:
        """Every call in the conversation, by reply, in the order they were made."""
        rows = await self.pool.fetch(
            "SELECT * FROM tool_calls WHERE conversation_id = $1 ORDER BY id", conversation_id
        )
        steps: dict[UUID, list[ToolStep]] = defaultdict(list)
        for row in rows:
            steps[row["reply_id"]].append(ToolStep.from_row(row))
        return steps
