"""A reply's frames gathered into one JSON answer, for REST clients that do not stream.

The collector reads frames until the reply ends, or until it waits for the
user (a tool call to approve): a request cannot hold the reply hostage, so
the answer then says ``awaiting_confirmation`` with the calls to approve, and
the client continues with ``POST /v1/replies/{id}/confirm`` and
``GET /v1/replies/{id}?after_seq=…``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from parley.errors import BudgetExceeded, Internal, ParleyError, UpstreamUnavailable
from parley.protocol import ServerFrame
from parley.replies.events import Event

AWAITING = "awaiting_confirmation"


@dataclass
class CollectedReply:
    parts: list[str] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # by call id, in order
    sources: list[dict[str, Any]] = field(default_factory=list)  # the knowledge passages cited
    error: dict[str, Any] | None = None
    status: str | None = None
    message_id: str | None = None
    usage: dict[str, Any] | None = None
    last_seq: int = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def waiting(self) -> bool:
        return any(call["status"] == AWAITING for call in self.tool_calls.values())

    def body(self) -> dict[str, Any]:
        """The ``reply`` object of a REST answer."""
        status = self.status or (AWAITING if self.waiting else "failed")
        shape: dict[str, Any] = {
            "message_id": self.message_id,
            "text": self.text,
            "status": status,
            "notices": self.notices,
            "last_seq": self.last_seq,
        }
        if self.tool_calls:
            shape["tool_calls"] = list(self.tool_calls.values())
        if self.sources:
            shape["sources"] = self.sources
        return shape

    def failure(self) -> ParleyError | None:
        """The error to answer with: only when the reply failed before any text."""
        if self.error is None or self.parts:
            return None
        if self.error["code"] == "upstream_unavailable":
            return UpstreamUnavailable(self.error["message"])
        if self.error["code"] == "budget_exceeded":
            return BudgetExceeded(self.error["message"])
        return Internal(self.error["message"])

    def take(self, event: Event) -> bool:
        """Take in one frame; ``True`` when collecting should stop here."""
        frame = event.frame
        kind = frame["type"]
        if event.numbered:
            self.last_seq = event.at
        if kind == "delta":
            self.parts.append(frame["text"])
        elif kind in ("tool_call", "tool_result"):
            return self._tool(frame)
        elif kind == "sources":
            self.sources = frame["sources"]
        elif kind == "notice":
            self.notices.append({k: frame[k] for k in ("rule", "action", "detail")})
        elif kind == "error":
            self.error = frame
        elif kind == "done":
            self.status, self.message_id, self.usage = (
                frame["status"],
                frame["message_id"],
                frame["usage"],
            )
        elif kind == "resync":
            self._resync(frame["message"])
        return event.ends_reply

    def _tool(self, frame: dict[str, Any]) -> bool:
        call = self.tool_calls.setdefault(
            frame["call_id"],
            {"call_id": frame["call_id"], "tool": frame["tool"], "arguments": None, "summary": ""},
        )
        call["status"] = frame["status"]
        if frame["type"] == "tool_call":
            call["arguments"] = frame["arguments"]
        else:
            call["summary"] = frame["summary"]
        return bool(frame["status"] == AWAITING)

    def _resync(self, message: dict[str, Any]) -> None:
        self.parts = [message["content"]]
        self.status, self.message_id = message["status"], message["id"]
        self.usage = message.get("usage")
        self.sources = message.get("sources") or self.sources
        for call in message.get("tool_calls") or ():
            self.tool_calls[call["call_id"]] = call


async def collect(events: AsyncIterator[Event]) -> CollectedReply:
    """Read until the reply ends or waits for the user's approval."""
    collected = CollectedReply()
    async for event in events:
        if collected.take(event):
            break
    return collected


def sse_event(kind: str, data: str) -> str:
    return f"event: {kind}\ndata: {data}\n\n"


async def sse_frames(events: AsyncIterator[Event], *first: ServerFrame) -> AsyncIterator[str]:
    """Frames as Server-Sent Events named after their type (``first`` ones before them)."""
    for frame in first:
        yield sse_event(frame.type, json.dumps(frame.to_dict(), separators=(",", ":")))
    async for event in events:
        yield sse_event(event.kind, event.json)
