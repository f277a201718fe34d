"""Administration: catalog reloads, handoffs, the operators' queue, review, webhooks."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from parley.transport.bodies.base import Closed
from parley.transport.bodies.conversations import ConversationInfo, Handoff
from parley.transport.bodies.errors import ErrorBody
from parley.transport.bodies.messages import Author, MessageInfo


class CatalogRefused(ErrorBody):
    """``POST /v1/admin/reload`` with a catalog that does not load: what is wrong with it."""

    problems: list[str] | None = None


class HandoffEvent(Closed):
    id: int
    conversation_id: str
    message_id: str | None
    user_id: str
    agent_id: str
    title: str | None
    rule: str
    detail: str
    created_at: str


class HandoffList(Closed):
    handoffs: list[HandoffEvent]


class Reloaded(Closed):
    version: str
    agents: list[str]


class Owner(Closed):
    id: str
    name: str | None


class Ratings(Closed):
    up: int
    down: int


class ListedConversation(ConversationInfo):
    owner: Owner
    handoff: Handoff
    feedback: Ratings


class QueuedConversation(ListedConversation):
    trigger: str | None
    rule: str | None
    reason: str | None
    requested_at: str | None
    last_user_message: str


class Queue(Closed):
    queue: list[QueuedConversation]


class ReviewPage(Closed):
    conversations: list[ListedConversation]
    next_before: str | None = Field(description="Pass as ``before`` for the next page.")


class ReviewedConversation(ConversationInfo):
    owner: Owner
    handoff: Handoff
    taken_by_id: str | None


class AdminAuthor(Author):
    id: str | None = None  # only admins see which operator it was


class ReviewedMessage(MessageInfo):
    author: AdminAuthor | None = None


class Transcript(Closed):
    conversation: ReviewedConversation
    messages: list[ReviewedMessage]
    handoffs: list[dict[str, Any]]
    takeovers: list[dict[str, Any]]


class Posted(Closed):
    message_id: str
    reply_id: str


class Deliveries(Closed):
    deliveries: list[dict[str, Any]] = Field(description="Newest first, with their attempts.")
