"""Handoffs and takeovers in Postgres: who asked for a person, who came, who left.

A conversation's state is two columns: ``needs_human`` (a person is wanted
or there) and ``taken_by`` (who is there). Requests for a person are rows of
``handoffs`` (at most one open per conversation), and every spell an operator
holds a conversation is a row of ``takeovers``, closed by whoever released it.
State changes lock the conversation's row, so two operators cannot both take it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from parley.auth.tokens import Principal
from parley.errors import Conflict, NotFound
from parley.rules import RuleEvent
from parley.storage.conversations import provisional_title
from parley.storage.records import Conversation


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    conversation_id: UUID
    trigger: str  # rule (an escalation rule), tool (handoff_to_human) or user (the button)
    reason: str
    rule: str | None = None  # the escalation rule's id, or the tool's name
    message_id: UUID | None = None  # the reply the request came with


@dataclass(frozen=True, slots=True)
class OpenedHandoff:
    """A new request for a person, as the webhook reports it."""

    id: int
    request: HandoffRequest
    owner_id: str
    agent_id: str
    requested_at: datetime


# Called inside the request's transaction (the webhook delivery is stored with it).
OnOpened = Callable[[asyncpg.Connection, OpenedHandoff], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Change:
    """A conversation after a take or release, and whether it changed anything."""

    conversation: Conversation
    changed: bool


class HandoffStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- requests --------------------------------------------------------------------

    async def request(self, request: HandoffRequest, on_opened: OnOpened) -> OpenedHandoff | None:
        """Open a request for a person; ``None`` if one is open already or a person is there."""
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "WITH opened AS ("
                "  INSERT INTO handoffs (conversation_id, trigger, rule, reason, message_id)"
                "  SELECT id, $2, $3, $4, $5 FROM conversations WHERE id = $1 AND taken_by IS NULL"
                "  ON CONFLICT (conversation_id) WHERE resolved_at IS NULL DO NOTHING"
                "  RETURNING id, requested_at),"
                " flagged AS (UPDATE conversations SET needs_human = true"
                "  WHERE id = $1 AND EXISTS (SELECT FROM opened))"
                " SELECT o.id, o.requested_at, c.owner_id, c.agent_id"
                " FROM opened o JOIN conversations c ON c.id = $1",
                request.conversation_id,
                request.trigger,
                request.rule,
                request.reason,
                request.message_id,
            )
            if row is None:
                return None
            opened = OpenedHandoff(
                row["id"], request, row["owner_id"], row["agent_id"], row["requested_at"]
            )
            await on_opened(connection, opened)
            return opened

    # -- taking over and handing back ---------------------------------------------------

    async def take(self, conversation_id: UUID, operator: Principal) -> Change:
        async with self.pool.acquire() as connection, connection.transaction():
            current = await _locked(connection, conversation_id)
            if current.taken_by == operator.user_id:
                return Change(current, changed=False)
            if current.taken_by is not None:
                raise Conflict(
                    f"{current.taken_by_name or current.taken_by} has taken this conversation"
                    " over already."
                )
            handoff_id = await connection.fetchval(
                "UPDATE handoffs SET resolved_at = now(), resolution = 'taken', resolved_by = $2"
                " WHERE conversation_id = $1 AND resolved_at IS NULL RETURNING id",
                conversation_id,
                operator.user_id,
            )
            await connection.execute(
                "INSERT INTO takeovers (conversation_id, handoff_id, operator_id, operator_name)"
                " VALUES ($1, $2, $3, $4)",
                conversation_id,
                handoff_id,
                operator.user_id,
                operator.name,
            )
            row = await connection.fetchrow(
                "UPDATE conversations SET taken_by = $2, taken_by_name = $3, taken_at = now(),"
                " needs_human = true, updated_at = now() WHERE id = $1 RETURNING *",
                conversation_id,
                operator.user_id,
                operator.name,
            )
            return Change(Conversation.from_row(row), changed=True)

    async def release(self, conversation_id: UUID, operator: Principal) -> Change:
        """Hand back to the agent: ends a takeover, or dismisses a waiting request."""
        async with self.pool.acquire() as connection, connection.transaction():
            current = await _locked(connection, conversation_id)
            if current.handoff_state == "none":
                return Change(current, changed=False)
            await connection.execute(
                "UPDATE takeovers SET released_at = now(), released_by = $2,"
                " released_by_name = $3 WHERE conversation_id = $1 AND released_at IS NULL",
                conversation_id,
                operator.user_id,
                operator.name,
            )
            await connection.execute(
                "UPDATE handoffs SET resolved_at = now(), resolution = 'released',"
                " resolved_by = $2 WHERE conversation_id = $1 AND resolved_at IS NULL",
                conversation_id,
                operator.user_id,
            )
            row = await connection.fetchrow(
                "UPDATE conversations SET taken_by = NULL, taken_by_name = NULL, taken_at = NULL,"
                " needs_human = false, updated_at = now() WHERE id = $1 RETURNING *",
                conversation_id,
            )
            return Change(Conversation.from_row(row), changed=True)

    async def taken(self) -> set[str]:
        """The conversations held by a person now."""
        rows = await self.pool.fetch("SELECT id FROM conversations WHERE taken_by IS NOT NULL")
        return {str(row["id"]) for row in rows}

    async def released(self, conversation_ids: set[str]) -> set[str]:
        """Those of ``conversation_ids`` that exist here and are not held by anyone."""
        ids = [UUID(value) for value in conversation_ids if _is_uuid(value)]
        if not ids:
            return set()
        rows = await self.pool.fetch(
            "SELECT id FROM conversations WHERE id = ANY($1::uuid[]) AND taken_by IS NULL", ids
        )
        return {str(row["id"]) for row in rows}

    # -- messages while a person holds the conversation --------------------------------

    async def insert_held(
        self,
        conversation_id: UUID,
        *,
        client_id: str,
        text: str,
        redacted: bool,
        events: tuple[RuleEvent, ...],
        catalog_version: str,
    ) -> tuple[UUID, str | None]:
        """A user message stored without a reply; an earlier one with the same ``client_id``
        is returned instead (with its reply, if it was answered before the takeover)."""
        message_id = await self.pool.fetchval(
            "WITH question AS ("
            "  INSERT INTO messages (id, conversation_id, role, content, status, client_id,"
            "  redacted, catalog_version) VALUES ($1, $2, 'user', $3, 'accepted', $4, $5, $6)"
            "  ON CONFLICT (conversation_id, client_id) DO NOTHING RETURNING id),"
            " counted AS ("
            "  UPDATE conversations SET message_count = message_count + 1, updated_at = now(),"
            "  title = coalesce(title, $7) WHERE id = $2 AND EXISTS (SELECT FROM question)),"
            " noted AS ("
            "  INSERT INTO rule_events (conversation_id, message_id, rule, action, detail)"
            "  SELECT $2, question.id, e.* FROM question,"
            "  unnest($8::text[], $9::text[], $10::text[]) e)"
            " SELECT id FROM question",
            uuid.uuid4(),
            conversation_id,
            text,
            client_id,
            redacted,
            catalog_version,
            provisional_title(text),
            [e.rule for e in events],
            [e.action for e in events],
            [e.detail for e in events],
        )
        if message_id is not None:
            return message_id, None
        return await self._earlier(conversation_id, client_id)

    async def _earlier(self, conversation_id: UUID, client_id: str) -> tuple[UUID, str | None]:
        row = await self.pool.fetchrow(
            "SELECT u.id, a.reply_id FROM messages u LEFT JOIN messages a ON a.reply_to = u.id"
            " WHERE u.conversation_id = $1 AND u.client_id = $2",
            conversation_id,
            client_id,
        )
        if row is None:  # the conversation was deleted meanwhile
            raise NotFound("No such conversation.")
        return row["id"], str(row["reply_id"]) if row["reply_id"] else None

    async def insert_operator_reply(
        self, conversation_id: UUID, reply_id: UUID, client_id: str, operator: Principal
    ) -> UUID | None:
        """The operator reply's row, ``streaming`` until the ledger stores its text;
        ``None`` if ``client_id`` was used before."""
        message_id: UUID | None = await self.pool.fetchval(
            "WITH answer AS ("
            "  INSERT INTO messages (id, conversation_id, role, content, status, client_id,"
            "  reply_id, author_kind, author_id, author_name)"
            "  VALUES ($1, $2, 'assistant', '', 'streaming', $3, $4, 'operator', $5, $6)"
            "  ON CONFLICT (conversation_id, client_id) DO NOTHING RETURNING id),"
            " counted AS ("
            "  UPDATE conversations SET message_count = message_count + 1, updated_at = now()"
            "  WHERE id = $2 AND EXISTS (SELECT FROM answer))"
            " SELECT id FROM answer",
            uuid.uuid4(),
            conversation_id,
            client_id,
            reply_id,
            operator.user_id,
            operator.name,
        )
        return message_id

    async def operator_reply(self, conversation_id: UUID, client_id: str) -> dict[str, Any] | None:
        """An operator reply sent before with this ``client_id``."""
        row = await self.pool.fetchrow(
            "SELECT id, reply_id FROM messages WHERE conversation_id = $1 AND client_id = $2",
            conversation_id,
            client_id,
        )
        if row is None:
            return None
        return {"message_id": str(row["id"]), "reply_id": str(row["reply_id"])}


async def _locked(connection: asyncpg.Connection, conversation_id: UUID) -> Conversation:
    row = await connection.fetchrow(
        "SELECT * FROM conversations WHERE id = $1 FOR UPDATE", conversation_id
    )
    if row is None:
        raise NotFound("No such conversation.")
    return Conversation.from_row(row)


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True
