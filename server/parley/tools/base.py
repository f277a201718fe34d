"""What a tool is to the reply loop, whatever implements it (HTTP, MCP, built-in).

The loop never trusts the model: it looks the tool up among those the
agent allows, validates the arguments against the tool's JSON Schema
(:meth:`Tool.check`), asks the user when the tool wants confirmation, and
only then calls :meth:`Tool.run`. A run never raises for an expected
failure (timeout, HTTP error, garbage response): it returns a
:class:`ToolResult` with ``status="error"``, which goes back to the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from parley.llm.base import ToolSpec

ResultStatus = Literal["ok", "error"]

# What a client is shown of a result; the model gets ``ToolResult.content``.
SUMMARY_CHARS = 200


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who is calling, for the tool's records, and the call's idempotency key."""

    reply_id: str
    call_id: str
    user_id: str
    conversation_id: str
    agent_id: str
    # The collections the agent may search: set by the server, never by the model.
    knowledge: tuple[str, ...] = ()

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt at this call, whichever instance makes it."""
        return f"{self.reply_id}:{self.call_id}"


@dataclass(frozen=True, slots=True)
class ToolResult:
    status: ResultStatus
    content: str  # what the model sees (untrusted data: JSON text or an error message)
    summary: str  # one short line for the client, at most SUMMARY_CHARS
    handoff_reason: str | None = None  # set by handoff_to_human: a person must take over

    @classmethod
    def ok(cls, content: str, summary: str, *, handoff_reason: str | None = None) -> ToolResult:
        return cls("ok", content, _short(summary), handoff_reason)

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls("error", message, _short(message))


class Tool(Protocol):
    """A runnable tool. Implementations are immutable once built."""

    @property
    def name(self) -> str:
        """What the model calls it (unique among an agent's tools)."""

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The JSON Schema of its arguments (type object)."""

    @property
    def confirm(self) -> bool:
        """The user approves each call, seeing its arguments, before it runs."""

    @property
    def side_effects(self) -> bool:
        """A call changes something: it carries an idempotency key and runs at most once."""

    @property
    def receives_pii(self) -> bool:
        """Arguments reach it unredacted (otherwise input redaction rules apply to them)."""

    @property
    def max_calls_per_reply(self) -> int | None: ...

    @property
    def timeout(self) -> float:
        """Seconds a run may take; the loop cancels it after that."""

    def check(self, arguments: str) -> dict[str, Any] | str:
        """Parse and validate the model's raw JSON arguments: the arguments, or why not."""

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult: ...


def spec_of(tool: Tool) -> ToolSpec:
    return ToolSpec(tool.name, tool.description, tool.parameters)


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
