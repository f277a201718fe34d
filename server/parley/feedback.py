"""Feedback on replies: a user's thumbs up or down, with an optional comment.

One rating per user and message, replaced whenever the user changes it
(the comment goes with it: a new rating without a comment clears the old
comment). Only finished assistant messages of the user's own conversations
can be rated; anything else is "not found", whoever's it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from parley.errors import NotFound
from parley.observability import metrics

Rating = Literal["up", "down"]
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Feedback:
    message_id: UUID
    rating: str
    comment: str | None
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "message_id": str(self.message_id),
            "rating": self.rating,
            "comment": self.comment,
            "updated_at": self.updated_at.isoformat(),
        }


class FeedbackStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def give(
        self, user_id: str, message_id: str, rating: Rating, comment: str | None
    ) -> Feedback:
        comment = (comment or "").strip() or None
        row = await self.pool.fetchrow(
            "INSERT INTO feedback (message_id, user_id, conversation_id, agent_id, rating, comment)"
            " SELECT m.id, c.owner_id, c.id, c.agent_id, $3, $4"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE m.id = $1 AND c.owner_id = $2 AND m.role = 'assistant'"
            " AND m.status <> 'streaming'"
            " ON CONFLICT (message_id, user_id) DO UPDATE SET rating = EXCLUDED.rating,"
            " comment = EXCLUDED.comment, updated_at = now()"
            " RETURNING message_id, agent_id, rating, comment, updated_at",
            _uuid(message_id),
            user_id,
            rating,
            comment,
        )
        if row is None:
            raise NotFound("No such message.")
        metrics.feedback_given(row["agent_id"], rating)
        return Feedback(row["message_id"], row["rating"], row["comment"], row["updated_at"])


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound("No such message.") from None
