"""One loaded set of tools, looked up by the ids rule sets list."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from parley.tools.base import Tool
from parley.tools.declared import DeclaredTool

log = logging.getLogger("parley.tools")


class ToolSet:
    """Immutable: a reload builds a new one. An id maps to one tool (an HTTP or
    built-in tool) or to every tool an MCP server exposes."""

    def __init__(self, by_id: Mapping[str, Sequence[DeclaredTool]]) -> None:
        self._by_id: Mapping[str, tuple[DeclaredTool, ...]] = MappingProxyType(
            {tool_id: tuple(tools) for tool_id, tools in by_id.items()}
        )

    def select(self, tool_ids: Sequence[str]) -> dict[str, Tool]:
        """The tools behind ``tool_ids``, keyed by the name the model calls them by."""
        selected: dict[str, Tool] = {}
        for tool_id in tool_ids:
            tools = self._by_id.get(tool_id)
            if tools is None:
                # The catalog checks ids against the tool files, so this means the
                # catalog and the tools were loaded from different files.
                log.warning("tool %r is not loaded; reload the tools with the catalog", tool_id)
                continue
            selected.update((tool.name, tool) for tool in tools)
        return selected

    def duplicate_names(self) -> list[str]:
        """Names claimed by more than one id (the model could not tell them apart)."""
        owners: dict[str, list[str]] = {}
        for tool_id, tools in self._by_id.items():
            for tool in tools:
                owners.setdefault(tool.name, []).append(tool_id)
        return [
            f"tool name {name!r} is used by {', '.join(ids)}"
            for name, ids in owners.items()
            if len(ids) > 1
        ]

    def public(self) -> list[dict[str, Any]]:
        """Every tool as operators may see it: no headers, URLs or environment values."""
        return [
            {"id": tool_id, **tool.public()}
            for tool_id, tools in sorted(self._by_id.items())
            for tool in tools
        ]
