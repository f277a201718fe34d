"""MCP tools: each tool an MCP server lists (or the ``expose`` subset) as a Parley tool.

The model calls them ``<file id>__<MCP tool name>``, which keeps names unique
across servers and within what both vendors accept. Descriptions and input
schemas are the server's, checked like a file's; what the file says about
confirmation, side effects and timeouts applies to every tool it exposes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from mcp_types import CallToolResult, RequestParamsMeta, TextContent
from mcp_types import Tool as McpToolInfo

from parley.tools.arguments import schema_problems
from parley.tools.base import ToolContext, ToolResult
from parley.tools.declared import DeclaredTool, Traits
from parley.tools.env import Secret, scrub
from parley.tools.mcp_session import McpCallFailed, McpConnection, McpUnavailable

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI and Anthropic both accept
SEPARATOR = "__"
IDEMPOTENCY_META = "dev.parley/idempotency-key"
MAX_RESULT_CHARS = 256_000
MAX_ERROR_CHARS = 2_000
Loc = tuple[str | int, ...]


@dataclass(frozen=True, eq=False, kw_only=True)
class McpTool(DeclaredTool):
    remote_name: str  # the tool's name on the MCP server
    connection: McpConnection = field(repr=False)

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        meta = None
        if self.side_effects:
            meta = cast(RequestParamsMeta, {IDEMPOTENCY_META: context.idempotency_key})
        try:
            result = await self.connection.call_tool(
                self.remote_name,
                arguments,
                read_timeout=self.timeout,
                retry_if_closed=not self.side_effects,  # a repeat is harmless only then
                meta=meta,
            )
        except (McpUnavailable, McpCallFailed) as error:
            return ToolResult.error(f"{self.name}: {error}")
        return result_of(self.name, result, self.connection.server.hidden)


def result_of(name: str, result: CallToolResult, hidden: Sequence[Secret] = ()) -> ToolResult:
    """Text content joined; structured content, when there is some, as JSON.

    Values the operator configured for the server (its env, headers) are
    scrubbed: a server echoing its own credentials must not hand them to the model.
    """
    texts = [
        block.text if isinstance(block, TextContent) else f"[{block.type} content omitted]"
        for block in result.content
    ]
    if result.is_error:
        message = " ".join(texts).strip()[:MAX_ERROR_CHARS] or "the tool failed"
        return ToolResult.error(scrub(f"{name}: {message}", hidden))
    if result.structured_content is not None:
        content = json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    else:
        content = "\n".join(texts)
    if len(content) > MAX_RESULT_CHARS:
        return ToolResult.error(f"{name}: the result is larger than {MAX_RESULT_CHARS} characters")
    return ToolResult.ok(scrub(content, hidden), f"{name}: done")


def mcp_tools(
    file_id: str,
    listed: Sequence[McpToolInfo],
    *,
    expose: Sequence[str] | None,
    traits: Traits,
    connection: McpConnection,
) -> tuple[list[McpTool], list[tuple[Loc, str]]]:
    """The exposed tools, and a problem (with its place in the file) per unusable one."""
    by_name = {tool.name: tool for tool in listed}
    known = ", ".join(by_name) or "none"
    problems: list[tuple[Loc, str]] = [
        (("mcp", "expose", index), f"the server has no tool {name!r} (it lists: {known})")
        for index, name in enumerate(expose or ())
        if name not in by_name
    ]
    chosen = [by_name[name] for name in expose if name in by_name] if expose else list(listed)
    tools: list[McpTool] = []
    for info in chosen:
        name = f"{file_id}{SEPARATOR}{info.name}"
        if not TOOL_NAME.match(name):
            problems.append(
                (
                    ("mcp",),
                    f"tool {info.name!r}: {name!r} is not a valid tool name for the model"
                    " (letters, digits, _ and -, at most 64); leave it out with expose",
                )
            )
            continue
        issues = schema_problems(info.input_schema)
        problems.extend((("mcp",), f"tool {info.name!r}: inputSchema: {issue}") for issue in issues)
        if issues:
            continue
        tools.append(
            McpTool(
                name=name,
                description=(info.description or info.title or info.name).strip(),
                parameters=info.input_schema,
                traits=traits,
                remote_name=info.name,
                connection=connection,
            )
        )
    return tools, problems
