"""Built-in tools: available to any rule set that lists them, no file needed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.knowledge.tool import Searcher, knowledge_search_tool
from parley.tools.base import ToolContext, ToolResult
from parley.tools.declared import DeclaredTool, Traits
from parley.tools.ids import HANDOFF, KNOWLEDGE_SEARCH

MAX_REASON_CHARS = 500

_HANDOFF_SCHEMA = {
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_REASON_CHARS,
            "description": "Why a person should take over, in one sentence.",
        }
    },
    "required": ["reason"],
    "additionalProperties": False,
}


@dataclass(frozen=True, eq=False, kw_only=True)
class HandoffTool(DeclaredTool):
    """Hands the conversation to a person; the reply loop treats it like an escalation rule."""

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        reason = " ".join(str(arguments.get("reason", "")).split())[:MAX_REASON_CHARS]
        reason = reason or "the assistant asked for a person"
        content = json.dumps({"handed_off": True, "reason": reason})
        return ToolResult.ok(content, f"Handed off to a person: {reason}", handoff_reason=reason)


def builtin_tools(knowledge: Searcher | None = None) -> dict[str, DeclaredTool]:
    """Fresh instances, keyed by tool id (which is also each tool's name).

    ``knowledge`` is what ``knowledge_search`` searches (without it, the tool
    exists for checking rule sets but answers that there is nothing to search).
    """
    handoff = HandoffTool(
        name=HANDOFF,
        description=(
            "Hand the conversation over to a human agent. Use it when the user asks for a"
            " person, or when you cannot help safely or accurately."
        ),
        parameters=_HANDOFF_SCHEMA,
        traits=Traits(timeout=1.0),
    )
    return {HANDOFF: handoff, KNOWLEDGE_SEARCH: knowledge_search_tool(knowledge)}
