"""Typed rows read from Postgres, with their public JSON shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from parley.protocol import Author, HandoffState


@dataclass(frozen=True, slots=True)
class Conversation:
    id: UUID
    owner_id: str
    agent_id: str
    personality_id: str
    rules_id: str
    title: str | None
    message_count: int
    needs_human: bool
    created_at: datetime
    updated_at: datetime
    taken_by: str | None = None  # the operator holding it; the agent is paused meanwhile
    taken_by_name: str | None = None
    title_source: str = "provisional"  # provisional, generated or user

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Conversation:
        return cls(**{name: row[name] for name in cls.__slots__})

    @property
    def handoff_state(self) -> str:
        """``taken`` (a person replies), ``waiting`` (for a person) or ``none``."""
        if self.taken_by is not None:
            return "taken"
        return "waiting" if self.needs_human else "none"

    def handoff(self) -> HandoffState:
        """The ``handoff`` object of the session frame: the state and who holds it."""
        shape: HandoffState = {"state": self.handoff_state}
        if self.taken_by is not None:
            shape["by"] = operator_author(self.taken_by_name or self.taken_by)
        return shape

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "title": self.title,
            "agent_id": self.agent_id,
            "personality": self.personality_id,
            "rules": self.rules_id,
            "message_count": self.message_count,
            "needs_human": self.needs_human,
            "handoff_state": self.handoff_state,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ToolStep:
    """A tool call of a reply as clients see it (the result the model saw stays stored)."""

    call_id: str
    tool: str
    arguments: Any
    status: str
    summary: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ToolStep:
        arguments = row["arguments"]
        return cls(
            call_id=row["call_id"],
            tool=row["tool"],
            arguments=json.loads(arguments) if isinstance(arguments, str) else arguments,
            status=row["status"],
            summary=row["summary"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "arguments": self.arguments,
            **self.result(),
        }

    def result(self) -> dict[str, Any]:
        """The fields of its ``tool_result`` frame."""
        return {
            "call_id": self.call_id,
            "tool": self.tool,
            "status": self.status,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: UUID
    conversation_id: UUID
    role: str
    content: str
    status: str
    client_id: str | None
    reply_id: UUID | None
    reply_to: UUID | None
    redacted: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    estimated: bool | None
    catalog_version: str | None
    model: str | None  # the model an assistant message was first asked of
    created_at: datetime
    author_kind: str | None = None  # "operator" for a person's reply; None: the usual author
    author_id: str | None = None
    author_name: str | None = None
    notices: tuple[dict[str, str], ...] = ()
    tool_steps: tuple[ToolStep, ...] = ()
    feedback: dict[str, Any] | None = None  # the owner's rating of an assistant message
    sources: tuple[dict[str, Any], ...] = ()  # the knowledge passages a reply was given

    @classmethod
    def from_row(
        cls,
        row: asyncpg.Record,
        notices: tuple[dict[str, str], ...] = (),
        tool_steps: tuple[ToolStep, ...] = (),
    ) -> Message:
        derived = ("notices", "tool_steps", "feedback", "sources")
        values: dict[str, Any] = {name: row[name] for name in cls.__slots__ if name not in derived}
        values["notices"] = notices
        values["tool_steps"] = tool_steps
        rating = row.get("feedback_rating")  # present when the query joined the feedback
        if rating is not None:
            values["feedback"] = {"rating": rating, "comment": row.get("feedback_comment")}
        values["sources"] = tuple(_json(row.get("sources")) or ())
        if values["cost_usd"] is not None:
            values["cost_usd"] = float(values["cost_usd"])
        return cls(**values)

    def usage(self) -> dict[str, Any] | None:
        if self.total_tokens is None:
            return None
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "estimated": self.estimated,
        }

    def public(self) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "id": str(self.id),
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
        }
        if self.redacted:
            shape["redacted"] = True
        if self.reply_id is not None:
            shape["reply_id"] = str(self.reply_id)
        if self.author_kind == "operator":
            shape["author"] = operator_author(self.author_name or "")
        usage = self.usage()
        if usage is not None:
            shape["usage"] = usage
        if self.notices:
            shape["notices"] = list(self.notices)
        if self.tool_steps:
            shape["tool_calls"] = [step.public() for step in self.tool_steps]
        if self.feedback is not None:
            shape["feedback"] = dict(self.feedback)
        if self.sources:
            shape["sources"] = [dict(source) for source in self.sources]
        return shape


def operator_author(name: str) -> Author:
    """How clients see a person who took a conversation over (never their user id)."""
    return {"kind": "operator", "name": name}


def _json(value: Any) -> Any:
    """A jsonb value, decoded also where the connection has no jsonb codec."""
    return json.loads(value) if isinstance(value, str) else value
