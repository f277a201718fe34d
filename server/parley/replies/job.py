"""What a reply is given when its message is accepted, and what it runs with."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from parley.catalog import Agent
from parley.llm.base import ChatMessage, ModelRef
from parley.llm.router import LLMRouter
from parley.observability.tracing import NO_TRACING, Tracing
from parley.protocol import ReplyStatus
from parley.replies.feed import LocalFeeds
from parley.replies.hooks import ReplyHooks
from parley.replies.log import ReplyLog
from parley.replies.memory import ConversationMemory
from parley.replies.screening import Classifiers
from parley.replies.tool_runner import ToolDeps
from parley.rules import RuleEvent
from parley.storage.budget import Reservation, TokenBudget
from parley.storage.ledger import Ledger
from parley.tools.base import Tool

StopReason = Literal[ReplyStatus.CANCELLED, ReplyStatus.INTERRUPTED, ReplyStatus.BLOCKED]


@dataclass(frozen=True, slots=True)
class ReplyJob:
    """Everything a reply needs, decided when its message was accepted."""

    reply_id: str
    user_id: str
    conversation_id: UUID
    agent: Agent
    user_text: str
    messages: tuple[ChatMessage, ...] = ()
    models: tuple[ModelRef, ...] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    input_events: tuple[RuleEvent, ...] = ()
    blocked_reply: str | None = None
    handoff: bool = False
    reservation: Reservation | None = None
    tools: Mapping[str, Tool] = field(default_factory=dict)  # by the name the model calls
    max_tool_rounds: int = 5
    first_turn: bool = False  # the conversation's first message (its title follows the reply)
    # False until the turn is stored when the conversation is stored with it: no
    # row written before then (a search's accounting) may refer to it.
    conversation_stored: bool = True
    # The knowledge passages in the prompt, as the ``sources`` frame lists them.
    sources: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class StopSignal:
    """Set by a cancel (from any instance), by this instance shutting down, or by a
    classifier rule's verdict ("blocked")."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: StopReason = ReplyStatus.CANCELLED

    def set(self, reason: StopReason) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


@dataclass(frozen=True, slots=True)
class ReplyDeps:
    log: ReplyLog
    ledger: Ledger
    router: LLMRouter
    budget: TokenBudget
    memory: ConversationMemory
    feeds: LocalFeeds
    tools: ToolDeps
    owner: str
    lease_ms: int
    classifiers: Classifiers
    tracing: Tracing = NO_TRACING
    hooks: ReplyHooks = field(default_factory=ReplyHooks)
