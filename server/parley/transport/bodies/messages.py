"""A stored message and what it carries: its author, usage, notices, tool calls,
sources and rating. Conversations list them; a reply's answer reuses their parts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from parley.transport.bodies.base import Closed


class Author(Closed):
    """A person who wrote in a conversation instead of the agent (never their user id)."""

    kind: Literal["operator"]
    name: str


class Usage(Closed):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float | None
    estimated: bool | None


class Notice(Closed):
    rule: str
    action: str
    detail: str


class ToolCall(Closed):
    call_id: str
    tool: str
    arguments: Any
    status: str
    summary: str


class Source(Closed):
    """A knowledge passage a reply was given, as its citation ``[n]`` links to it."""

    n: int
    title: str
    uri: str = Field(description="GET it for the passage as plain text.")
    snippet: str
    score: float


class Rating(Closed):
    rating: Literal["up", "down"]
    comment: str | None


class MessageInfo(Closed):
    id: str
    role: Literal["user", "assistant"]
    content: str
    status: str
    created_at: str
    redacted: bool | None = None
    reply_id: str | None = None
    author: Author | None = None
    usage: Usage | None = None
    notices: list[Notice] | None = None
    tool_calls: list[ToolCall] | None = None
    feedback: Rating | None = None
    sources: list[Source] | None = None
