"""Users, conversations and messages in Postgres.

Every query that reads a conversation takes the owner's id, so a user can
never reach another user's rows: a foreign id is simply "not found".
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from parley.errors import Conflict, NotFound
from parley.storage.records import Conversation, Message
from parley.storage.tool_calls import ToolCallStore

TITLE_LENGTH = 80
# Statuses whose text is part of the conversation the model sees next turn.
CONTEXT_STATUSES = ("accepted", "complete", "cancelled", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class NewConversation:
    """A conversation stored with its first turn (:meth:`ConversationStore.draft`)."""

    conversation: Conversation
    owner_name: str


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A user message and the assistant reply it starts, written together."""

    conversation_id: UUID
    client_id: str
    text: str
    user_status: str
    redacted: bool
    reply_id: UUID
    catalog_version: str
    model: str | None = None  # ``provider:model`` the reply is first sent to
    # The knowledge passages the reply is given (its ``sources`` frame), if any.
    sources: tuple[dict[str, Any], ...] = ()
    creates: NewConversation | None = None  # the conversation too, with its owner


@dataclass(frozen=True, slots=True)
class TurnIds:
    message_id: UUID
    reply_message_id: UUID
    reply_id: UUID


@dataclass(frozen=True, slots=True)
class EarlierTurn:
    """A stored turn, found again by its message's ``client_id``."""

    ids: TurnIds
    text: str  # the user message as stored
    redacted: bool


class ConversationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def store(self, draft: Conversation, owner_name: str) -> Conversation:
        """Store a :meth:`draft` and upsert its owner, in one statement: a new
        conversation is on the way to a new chat's first token. (Its foreign key is
        checked at the statement's end, when the owner's row is there.)"""
        row = await self.pool.fetchrow(
            f"WITH {_owner('$2', '$6')}"
            " INSERT INTO conversations (id, owner_id, agent_id, personality_id, rules_id)"
            " SELECT $1, owner.id, $3, $4, $5 FROM owner RETURNING *",
            draft.id,
            draft.owner_id,
            draft.agent_id,
            draft.personality_id,
            draft.rules_id,
            owner_name,
        )
        return Conversation.from_row(row)

    def draft(
        self, owner_id: str, agent_id: str, personality_id: str, rules_id: str
    ) -> Conversation:
        """A new conversation, not stored yet: by :meth:`store`, or by
        :meth:`insert_turn` with its first turn (``NewTurn.creates``: one statement,
        so one round trip and one commit on the way to the first token, and nothing
        stored if the message is refused). Its times are this process's; the stored
        row takes the database's."""
        now = datetime.now(UTC)
        return Conversation(
            id=uuid.uuid4(),
            owner_id=owner_id,
            agent_id=agent_id,
            personality_id=personality_id,
            rules_id=rules_id,
            title=None,
            message_count=0,
            needs_human=False,
            created_at=now,
            updated_at=now,
        )

    async def get(self, owner_id: str, conversation_id: UUID | str) -> Conversation:
        row = await self.pool.fetchrow(
            "SELECT * FROM conversations WHERE id = $1 AND owner_id = $2",
            _uuid(conversation_id),
            owner_id,
        )
        if row is None:
            raise NotFound("No such conversation.")
        return Conversation.from_row(row)

    async def owned_by(self, owner_id: str, *, limit: int = 50) -> list[Conversation]:
        rows = await self.pool.fetch(
            "SELECT * FROM conversations WHERE owner_id = $1 ORDER BY updated_at DESC, id LIMIT $2",
            owner_id,
            limit,
        )
        return [Conversation.from_row(row) for row in rows]

    async def rename(self, owner_id: str, conversation_id: UUID | str, title: str) -> Conversation:
        """The user's own title, which a generated one never replaces."""
        row = await self.pool.fetchrow(
            "UPDATE conversations SET title = $3, title_source = 'user'"
            " WHERE id = $1 AND owner_id = $2 RETURNING *",
            _uuid(conversation_id),
            owner_id,
            title,
        )
        if row is None:
            raise NotFound("No such conversation.")
        return Conversation.from_row(row)

    async def delete(self, owner_id: str, conversation_id: UUID | str) -> None:
        result = await self.pool.execute(
            "DELETE FROM conversations WHERE id = $1 AND owner_id = $2",
            _uuid(conversation_id),
            owner_id,
        )
        if result == "DELETE 0":
            raise NotFound("No such conversation.")

    async def find(self, conversation_id: UUID) -> Conversation | None:
        """Any user's conversation, for the server's own housekeeping (never for a client)."""
        row = await self.pool.fetchrow("SELECT * FROM conversations WHERE id = $1", conversation_id)
        return Conversation.from_row(row) if row is not None else None

    async def messages(self, conversation_id: UUID) -> list[Message]:
        """Every message, oldest first, with the rule notices of each reply and the
        owner's feedback on it."""
        rows = await self.pool.fetch(
            "SELECT m.*, f.rating AS feedback_rating, f.comment AS feedback_comment"
            " FROM messages m LEFT JOIN feedback f ON f.message_id = m.id"
            " WHERE m.conversation_id = $1 ORDER BY m.position",
            conversation_id,
        )
        events = await self.pool.fetch(
            "SELECT message_id, rule, action, detail FROM rule_events"
            " WHERE conversation_id = $1 ORDER BY id",
            conversation_id,
        )
        notices: dict[UUID, list[dict[str, str]]] = defaultdict(list)
        for event in events:
            notice = {"rule": event["rule"], "action": event["action"], "detail": event["detail"]}
            if notice not in notices[event["message_id"]]:
                notices[event["message_id"]].append(notice)
        steps = await ToolCallStore(self.pool).for_conversation(conversation_id)
        return [
            Message.from_row(
                row, tuple(notices.get(row["id"], ())), tuple(steps.get(row["reply_id"], ()))
            )
            for row in rows
        ]

    async def recent_context(
        self, conversation_id: UUID, limit: int, *, before: UUID | None = None
    ) -> list[Message]:
        """The newest ``limit`` messages the model should see, oldest first
        (only those older than message ``before``, when given)."""
        rows = await self.pool.fetch(
            "SELECT * FROM (SELECT * FROM messages WHERE conversation_id = $1"
            " AND status = ANY($2::text[]) AND content <> ''"
            " AND ($4::uuid IS NULL OR position < (SELECT position FROM messages WHERE id = $4))"
            " ORDER BY position DESC LIMIT $3) newest ORDER BY position",
            conversation_id,
            list(CONTEXT_STATUSES),
            limit,
            before,
        )
        return [Message.from_row(row) for row in rows]

    async def message_for_reply(self, reply_id: UUID | str) -> Message | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM messages WHERE reply_id = $1", _uuid(reply_id)
        )
        return Message.from_row(row) if row is not None else None

    async def find_turn(self, conversation_id: UUID, client_id: str) -> EarlierTurn | None:
        """The turn an earlier message with this ``client_id`` started, if any."""
        row = await self.pool.fetchrow(
            "SELECT u.id AS message_id, a.id AS reply_message_id, a.reply_id,"
            " u.content, u.redacted"
            " FROM messages u JOIN messages a ON a.reply_to = u.id"
            " WHERE u.conversation_id = $1 AND u.client_id = $2",
            conversation_id,
            client_id,
        )
        if row is None:
            return None
        ids = TurnIds(row["message_id"], row["reply_message_id"], row["reply_id"])
        return EarlierTurn(ids, row["content"], row["redacted"])

    async def insert_turn(self, turn: NewTurn) -> TurnIds | None:
        """Write the user message and the streaming reply placeholder at once.

        Returns ``None`` when this ``client_id`` is already taken in the
        conversation (a concurrent resend won the race).
        """
        ids = TurnIds(uuid.uuid4(), uuid.uuid4(), turn.reply_id)
        arguments = [
            ids.message_id,
            turn.conversation_id,
            turn.text,
            turn.user_status,
            turn.client_id,
            turn.redacted,
            turn.catalog_version,
            ids.reply_message_id,
            turn.reply_id,
            provisional_title(turn.text),
            turn.model,
            list(turn.sources) if turn.sources else None,
        ]
        if turn.creates is None:
            inserted = await self.pool.fetchval(_INSERT_TURN, *arguments)
        else:
            made = turn.creates.conversation
            owner = [made.owner_id, turn.creates.owner_name]
            kind = [made.agent_id, made.personality_id, made.rules_id]
            inserted = await self.pool.fetchval(_INSERT_FIRST_TURN, *arguments, *owner, *kind)
        return ids if inserted is not None else None

    async def claim_idempotency_key(
        self, user_id: str, key: str, request_hash: str, conversation_id: UUID
    ) -> UUID:
        """Bind ``key`` to a conversation, or return the one it is bound to.

        The same key with a different request body is a client bug: 422.
        """
        # DO UPDATE, not DO NOTHING plus a SELECT: when a concurrent request
        # inserted the key and committed after this statement began, the SELECT
        # (on the statement's snapshot) would not see its row, while DO UPDATE
        # waits for it, locks it and returns it. The update changes nothing.
        row = await self.pool.fetchrow(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, conversation_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, key)"
            " DO UPDATE SET request_hash = idempotency_keys.request_hash"
            " RETURNING request_hash, conversation_id",
            user_id,
            key,
            request_hash,
            conversation_id,
        )
        assert row is not None  # INSERT ... ON CONFLICT DO UPDATE always returns its row
        if row["request_hash"] != request_hash:
            raise Conflict()
        bound: UUID = row["conversation_id"]
        return bound

    async def idempotent_conversation(self, user_id: str, key: str) -> tuple[str, UUID] | None:
        row = await self.pool.fetchrow(
            "SELECT request_hash, conversation_id FROM idempotency_keys"
            " WHERE user_id = $1 AND key = $2",
            user_id,
            key,
        )
        return (row["request_hash"], row["conversation_id"]) if row is not None else None


def _owner(user_id: str, name: str) -> str:
    """The CTE ``owner``: a conversation's owner upserted (from parameters
    ``user_id`` and ``name``), and its id."""
    return (
        f"owner AS (INSERT INTO users (id, name) VALUES ({user_id}, {name})"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, last_seen_at = now()"
        " RETURNING id)"
    )


# The reply's placeholder, answering the CTE ``question``'s row (none if the
# question was not inserted).
_ANSWER = (
    " answer AS ("
    "  INSERT INTO messages (id, conversation_id, role, content, status, reply_id,"
    "  reply_to, catalog_version, model, sources) SELECT $8, $2, 'assistant', '',"
    "  'streaming', $9, question.id, $7, $11, $12 FROM question RETURNING id)"
)
# A turn: the user's message and the reply's placeholder, and the conversation
# counted, in one statement (one round trip, one implicit transaction). $1..$12
# are insert_turn's arguments.
_INSERT_TURN = (
    "WITH question AS ("
    "  INSERT INTO messages (id, conversation_id, role, content, status, client_id,"
    "  redacted, catalog_version) VALUES ($1, $2, 'user', $3, $4, $5, $6, $7)"
    "  ON CONFLICT (conversation_id, client_id) DO NOTHING RETURNING id),"
    f"{_ANSWER},"
    " counted AS ("
    "  UPDATE conversations SET message_count = message_count + 2, updated_at = now(),"
    "  title = coalesce(title, $10) WHERE id = $2 AND EXISTS (SELECT FROM answer))"
    " SELECT id FROM question"
)
# The first turn of a conversation stored with it: the owner ($13, named $14)
# upserted, the conversation ($2: agent $15, personality $16, rules $17) inserted
# already counted and titled, then the turn. Foreign keys are checked at the
# statement's end, when every row is there.
_INSERT_FIRST_TURN = (
    f"WITH {_owner('$13', '$14')},"
    " made AS ("
    "  INSERT INTO conversations (id, owner_id, agent_id, personality_id, rules_id, title,"
    "  message_count) SELECT $2, owner.id, $15, $16, $17, $10, 2 FROM owner RETURNING id),"
    " question AS ("
    "  INSERT INTO messages (id, conversation_id, role, content, status, client_id,"
    "  redacted, catalog_version) SELECT $1, made.id, 'user', $3, $4, $5, $6, $7 FROM made"
    "  RETURNING id),"
    f"{_ANSWER}"
    " SELECT id FROM question"
)


def provisional_title(text: str) -> str:
    """A conversation's title until a better one is written: its first message, on one line."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def _uuid(value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except ValueError:
        raise NotFound("No such conversation.") from None
