"""Replies over REST: a message's reply collected or followed, its failures, approvals."""

from __future__ import annotations

from pydantic import Field

from parley.transport.bodies.base import Closed
from parley.transport.bodies.conversations import Handoff
from parley.transport.bodies.errors import ErrorBody
from parley.transport.bodies.messages import Notice, Source, ToolCall, Usage


class Reply(Closed):
    """A reply collected into one answer (until it ends, or waits for an approval)."""

    message_id: str | None
    text: str
    status: str = Field(
        description="complete, blocked, cancelled, failed, interrupted or awaiting_confirmation"
    )
    notices: list[Notice]
    last_seq: int = Field(description="Continue with GET /v1/replies/{reply_id}?after_seq=…")
    tool_calls: list[ToolCall] | None = None
    sources: list[Source] | None = None


class StoredMessage(Closed):
    """The user's message as it was stored: input redactions applied."""

    text: str
    redacted: bool = Field(description="a rule changed the text before it was stored")


class ChatAnswer(Closed):
    """``POST /v1/chat`` without streaming. With a person holding the conversation,
    nothing replies: ``reply_id``, ``reply`` and ``usage`` are null and ``handoff`` says who."""

    conversation_id: str
    message_id: str
    message: StoredMessage
    reply_id: str | None
    reply: Reply | None
    usage: Usage | None
    handoff: Handoff | None = None


class ChatFailure(ErrorBody):
    """An error; when the reply itself failed before any text, also what was stored."""

    conversation_id: str | None = None
    message_id: str | None = None
    message: StoredMessage | None = None
    reply_id: str | None = None
    reply: Reply | None = None
    usage: Usage | None = None


class FollowedReply(Closed):
    reply_id: str
    reply: Reply
    usage: Usage | None


class FollowFailure(ErrorBody):
    reply_id: str | None = None
    reply: Reply | None = None
    usage: Usage | None = None


class Confirmed(Closed):
    reply_id: str
    call_id: str
    approve: bool
