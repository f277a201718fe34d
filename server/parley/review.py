"""What admins read: the operator queue, conversations by filter, whole transcripts.

Every query here ignores ownership on purpose (admins review everyone's
conversations); the endpoints that call it check the admin role first.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from parley.errors import BadRequest, NotFound
from parley.storage.conversations import ConversationStore
from parley.storage.records import Conversation, Message

STATUSES = ("needs_human", "taken", "normal")
FEEDBACK = ("down", "up", "any", "none")
_ACTION = re.compile(r"^[a-z_]{1,32}$")
EXPORT_PAGE = 100

# Each status as a condition on a conversation row ``c``.
_STATUS_SQL = {
    "needs_human": "c.needs_human AND c.taken_by IS NULL",
    "taken": "c.taken_by IS NOT NULL",
    "normal": "NOT c.needs_human AND c.taken_by IS NULL",
}
_FEEDBACK_SQL = {
    "down": "EXISTS (SELECT FROM feedback f WHERE f.conversation_id = c.id AND f.rating = 'down')",
    "up": "EXISTS (SELECT FROM feedback f WHERE f.conversation_id = c.id AND f.rating = 'up')",
    "any": "EXISTS (SELECT FROM feedback f WHERE f.conversation_id = c.id)",
    "none": "NOT EXISTS (SELECT FROM feedback f WHERE f.conversation_id = c.id)",
}
_LISTED_COLUMNS = (
    "SELECT c.*, u.name AS owner_name,"
    " (SELECT count(*) FROM feedback f WHERE f.conversation_id = c.id AND f.rating = 'up') AS up,"
    " (SELECT count(*) FROM feedback f WHERE f.conversation_id = c.id AND f.rating = 'down')"
    " AS down"
)
_LISTED_FROM = " FROM conversations c JOIN users u ON u.id = c.owner_id"
_LISTED = _LISTED_COLUMNS + _LISTED_FROM


@dataclass(frozen=True, slots=True)
class ReviewFilter:
    agent: str | None = None
    status: str | None = None
    feedback: str | None = None
    action: str | None = None  # has a rule event with this action (handoff, redacted, ...)
    user: str | None = None
    before: tuple[datetime, UUID] | None = None  # keyset cursor: (updated_at, id)

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}.")
        if self.feedback is not None and self.feedback not in FEEDBACK:
            raise BadRequest(f"feedback must be one of {', '.join(FEEDBACK)}.")
        if self.action is not None and not _ACTION.match(self.action):
            raise BadRequest("action must be a rule action such as handoff or redacted.")

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if self.agent is not None:
            clauses.append(f"c.agent_id = {arg(self.agent)}")
        if self.user is not None:
            clauses.append(f"c.owner_id = {arg(self.user)}")
        if self.status is not None:
            clauses.append(_STATUS_SQL[self.status])
        if self.feedback is not None:
            clauses.append(_FEEDBACK_SQL[self.feedback])
        if self.action is not None:
            clauses.append(
                "EXISTS (SELECT FROM rule_events e WHERE e.conversation_id = c.id"
                f" AND e.action = {arg(self.action)})"
            )
        if self.before is not None:
            clauses.append(f"(c.updated_at, c.id) < ({arg(self.before[0])}, {arg(self.before[1])})")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def parse_cursor(raw: str) -> tuple[datetime, UUID]:
    """The ``(updated_at, id)`` of a ``next_before`` cursor; ``bad_request`` for anything else.

    The time is in UTC, as cursors are written: a time only another offset keeps
    within years 1 to 9999 cannot be compared with Postgres' (it used to be a 500).
    """
    when, _, ident = raw.partition("|")
    try:
        moment = datetime.fromisoformat(when)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC), UUID(ident)
    except (ValueError, OverflowError):
        raise BadRequest("before must be a cursor from an earlier page.") from None


class ReviewStore:
    def __init__(self, pool: asyncpg.Pool, conversations: ConversationStore) -> None:
        self.pool = pool
        self.conversations = conversations

    async def queue(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Conversations waiting for a person or held by one, longest waiting first."""
        rows = await self.pool.fetch(
            f"{_LISTED_COLUMNS}, h.trigger, h.rule, h.reason, h.requested_at,"
            " (SELECT m.content FROM messages m WHERE m.conversation_id = c.id"
            "  AND m.role = 'user' ORDER BY m.position DESC LIMIT 1) AS last_user_message"
            f"{_LISTED_FROM} LEFT JOIN LATERAL (SELECT * FROM handoffs WHERE conversation_id = c.id"
            "  ORDER BY id DESC LIMIT 1) h ON true"
            " WHERE c.needs_human OR c.taken_by IS NOT NULL"
            " ORDER BY coalesce(h.requested_at, c.taken_at, c.updated_at), c.id LIMIT $1",
            limit,
        )
        return [
            {
                **_listed(row),
                "trigger": row["trigger"],
                "rule": row["rule"],
                "reason": row["reason"],
                "requested_at": row["requested_at"].isoformat() if row["requested_at"] else None,
                "last_user_message": (row["last_user_message"] or "")[:280],
            }
            for row in rows
        ]

    async def list(
        self, where: ReviewFilter, *, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of conversations, newest activity first, and the cursor of the next page."""
        sql, args = where.where()
        rows = await self.pool.fetch(
            f"{_LISTED}{sql} ORDER BY c.updated_at DESC, c.id DESC LIMIT {int(limit) + 1}",
            *args,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = f"{rows[-1]['updated_at'].isoformat()}|{rows[-1]['id']}" if more else None
        return [_listed(row) for row in rows], cursor

    async def transcript(self, conversation_id: str) -> dict[str, Any]:
        conversation = await self._find(conversation_id)
        return await self._transcript(conversation)

    async def export(self, where: ReviewFilter, *, limit: int) -> AsyncIterator[dict[str, Any]]:
        """Whole transcripts of the matching conversations, page by page."""
        sent = 0
        while sent < limit:
            page, cursor = await self.list(where, limit=min(EXPORT_PAGE, limit - sent))
            for listed in page:
                conversation = await self.conversations.find(UUID(listed["id"]))
                if conversation is not None:  # deleted since it was listed
                    yield await self._transcript(conversation)
            sent += len(page)
            if cursor is None:
                return
            where = replace(where, before=parse_cursor(cursor))

    async def _find(self, conversation_id: str) -> Conversation:
        try:
            ident = UUID(conversation_id)
        except ValueError:
            raise NotFound("No such conversation.") from None
        conversation = await self.conversations.find(ident)
        if conversation is None:
            raise NotFound("No such conversation.")
        return conversation

    async def _transcript(self, conversation: Conversation) -> dict[str, Any]:
        messages = await self.conversations.messages(conversation.id)
        owner = await self.pool.fetchval(
            "SELECT name FROM users WHERE id = $1", conversation.owner_id
        )
        handoffs = await self.pool.fetch(
            "SELECT * FROM handoffs WHERE conversation_id = $1 ORDER BY id", conversation.id
        )
        takeovers = await self.pool.fetch(
            "SELECT * FROM takeovers WHERE conversation_id = $1 ORDER BY id", conversation.id
        )
        return {
            "conversation": {
                **conversation.public(),
                "owner": {"id": conversation.owner_id, "name": owner},
                "handoff": conversation.handoff(),
                "taken_by_id": conversation.taken_by,
            },
            "messages": [_admin_message(message) for message in messages],
            "handoffs": [_row(row, skip=("conversation_id",)) for row in handoffs],
            "takeovers": [_row(row, skip=("conversation_id",)) for row in takeovers],
        }


def _listed(row: asyncpg.Record) -> dict[str, Any]:
    conversation = Conversation.from_row(row)
    return {
        **conversation.public(),
        "owner": {"id": conversation.owner_id, "name": row["owner_name"]},
        "handoff": conversation.handoff(),
        "feedback": {"up": row["up"], "down": row["down"]},
    }


def _admin_message(message: Message) -> dict[str, Any]:
    """A message as its owner sees it, plus who wrote it when that was an operator."""
    shape = message.public()
    if message.author_kind == "operator":
        shape["author"] = {**shape["author"], "id": message.author_id}
    return shape


def _row(row: asyncpg.Record, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in skip:
            continue
        out[key] = (
            value.isoformat()
            if isinstance(value, datetime)
            else (str(value) if isinstance(value, UUID) else value)
        )
    return out
