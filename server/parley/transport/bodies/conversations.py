"""A user's conversations: listed, read, renamed, handed off, rated; their usage."""

from __future__ import annotations

from typing import Literal

from parley.transport.bodies.base import Closed
from parley.transport.bodies.messages import Author, MessageInfo


class Handoff(Closed):
    state: Literal["none", "waiting", "taken"]
    by: Author | None = None


class ConversationInfo(Closed):
    id: str
    title: str | None
    agent_id: str
    personality: str
    rules: str
    message_count: int
    needs_human: bool
    handoff_state: Literal["none", "waiting", "taken"]
    created_at: str
    updated_at: str


class ConversationList(Closed):
    conversations: list[ConversationInfo]


class ConversationDetail(Closed):
    conversation: ConversationInfo
    messages: list[MessageInfo]


class Renamed(Closed):
    conversation: ConversationInfo


class HandoffState(Closed):
    conversation_id: str
    handoff: Handoff


class FeedbackInfo(Closed):
    message_id: str
    rating: Literal["up", "down"]
    comment: str | None
    updated_at: str


class FeedbackGiven(Closed):
    feedback: FeedbackInfo


class UsageRow(Closed):
    day: str
    agent_id: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    estimated: bool


class UsageReport(Closed):
    usage: list[UsageRow]
