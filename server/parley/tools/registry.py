"""The running server's tools: loaded at start-up, swapped whole on reload.

:class:`ToolRegistry` owns what tools share: the HTTP client session and one
:class:`~parley.tools.mcp_session.McpConnection` per MCP server. A reload
builds the complete new set first, including listing every MCP server's
tools, and swaps it in with one assignment; if anything is wrong, the
running set stays and every problem is raised at once as a CatalogError.

MCP connections outlive a reload when the server's configuration did not
change (a reload does not restart them, and calls in flight carry on); a
server whose file changed or went away is closed after the swap.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from parley.catalog.errors import CatalogError
from parley.catalog.files import describe
from parley.knowledge.tool import Searcher
from parley.tools.base import Tool
from parley.tools.builtin import builtin_tools
from parley.tools.declared import DeclaredTool
from parley.tools.env import Environment
from parley.tools.http import HttpTool, http_session
from parley.tools.loading import (
    Declaration,
    HttpDeclaration,
    McpDeclaration,
    load_declarations,
)
from parley.tools.mcp_session import (
    CONNECT_TIMEOUT,
    McpCallFailed,
    McpConnection,
    McpServer,
    McpUnavailable,
)
from parley.tools.mcp_tool import mcp_tools
from parley.tools.toolset import ToolSet


class ToolRegistry:
    """Start with :meth:`start`, look tools up with :meth:`select`, finish with :meth:`aclose`.

    ``environ`` is what ``${env:NAME}`` references read (``os.environ`` by default).
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        knowledge: Searcher | None = None,
    ) -> None:
        self._environment = Environment(os.environ if environ is None else environ)
        self._knowledge = knowledge  # what the built-in knowledge_search searches
        self._connect_timeout = connect_timeout
        self._root: Path | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tools = ToolSet({})
        self._connections: dict[McpServer, McpConnection] = {}
        self._reloading = asyncio.Lock()

    @property
    def current(self) -> ToolSet:
        return self._tools

    async def start(self, root: Path) -> ToolSet:
        """Load ``root/tools`` and start every MCP server; CatalogError if anything fails."""
        if self._http is not None:
            raise RuntimeError("the registry is already started")
        self._root = root
        self._http = http_session()
        try:
            return await self.reload()
        except BaseException:
            await self.aclose()
            raise

    async def reload(self) -> ToolSet:
        """Load the files again and swap the new set in; on CatalogError the old one stays."""
        if self._root is None or self._http is None:
            raise RuntimeError("start() the registry first")
        async with self._reloading:  # two reloads must not interleave their swaps
            declarations = load_declarations(self._root, self._environment)
            connections = self._connections_for(declarations)
            fresh = [c for c in connections.values() if c not in self._running()]
            try:
                tools, problems = await self._build(declarations, connections, self._http)
            except BaseException:  # cancelled mid-way: stop what this attempt started
                await _close(fresh)
                raise
            if problems:
                await _close(fresh)
                raise CatalogError(problems)
            retired = [c for c in self._running() if c not in connections.values()]
            self._tools, self._connections = tools, connections  # the swap
            await _close(retired)
            return tools

    def select(self, tool_ids: Sequence[str]) -> dict[str, Tool]:
        """The current tools behind ``tool_ids``, keyed by the name the model calls."""
        return self._tools.select(tool_ids)

    def public(self) -> list[dict[str, Any]]:
        return self._tools.public()

    async def aclose(self) -> None:
        """Stop every MCP server and close the HTTP session. Safe to call twice."""
        connections, self._connections = self._running(), {}
        self._tools = ToolSet({})
        await _close(connections)
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- building -----------------------------------------------------------------

    def _running(self) -> list[McpConnection]:
        return list(self._connections.values())

    def _connections_for(
        self, declarations: Sequence[Declaration]
    ) -> dict[McpServer, McpConnection]:
        """A connection per MCP server: the running one if its configuration is unchanged."""
        connections: dict[McpServer, McpConnection] = {}
        for declaration in declarations:
            if isinstance(declaration, McpDeclaration) and declaration.server not in connections:
                connections[declaration.server] = self._connections.get(
                    declaration.server
                ) or McpConnection(
                    declaration.id, declaration.server, connect_timeout=self._connect_timeout
                )
        return connections

    async def _build(
        self,
        declarations: Sequence[Declaration],
        connections: Mapping[McpServer, McpConnection],
        session: aiohttp.ClientSession,
    ) -> tuple[ToolSet, list[str]]:
        """The complete new set (every MCP server listed, concurrently), and its problems."""
        by_id: dict[str, list[DeclaredTool]] = {
            tool_id: [tool] for tool_id, tool in builtin_tools(self._knowledge).items()
        }
        for declaration in declarations:
            if isinstance(declaration, HttpDeclaration):
                by_id[declaration.id] = [self._http_tool(declaration, session)]
        mcp = [d for d in declarations if isinstance(d, McpDeclaration)]
        results = await asyncio.gather(*(self._mcp_tools(d, connections[d.server]) for d in mcp))
        problems = [problem for _, found in results for problem in found]
        by_id.update((d.id, tools) for d, (tools, _) in zip(mcp, results, strict=True))
        tools = ToolSet(by_id)
        return tools, problems + tools.duplicate_names()

    @staticmethod
    def _http_tool(declaration: HttpDeclaration, session: aiohttp.ClientSession) -> HttpTool:
        return HttpTool(
            name=declaration.id,
            description=declaration.description,
            parameters=declaration.parameters,
            traits=declaration.traits,
            request=declaration.request,
            session=session,
        )

    @staticmethod
    async def _mcp_tools(
        declaration: McpDeclaration, connection: McpConnection
    ) -> tuple[list[DeclaredTool], list[str]]:
        """The server's exposed tools, listed now, and any problems (located in its file)."""
        try:
            listed = await connection.list_tools()
        except (McpUnavailable, McpCallFailed) as error:
            return [], [describe(declaration.document, ("mcp",), str(error))]
        tools, problems = mcp_tools(
            declaration.id,
            listed,
            expose=declaration.expose,
            traits=declaration.traits,
            connection=connection,
        )
        located = [describe(declaration.document, loc, reason) for loc, reason in problems]
        return list(tools), located


async def _close(connections: Iterable[McpConnection]) -> None:
    await asyncio.gather(*(connection.aclose() for connection in connections))
