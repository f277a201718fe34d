"""``parley check`` for tools: the files, and unless offline, every MCP server.

Online, the check starts the tools exactly as ``parley serve`` would (every
MCP server launched or reached, its tools listed, ``expose`` names looked
up) and then stops them again. Offline, it checks only what the files and
the environment can tell: shapes, schemas, URL templates, ``${env:...}``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from parley.catalog.errors import CatalogError
from parley.tools.env import Environment
from parley.tools.ids import BUILTIN_IDS
from parley.tools.loading import load_declarations
from parley.tools.registry import ToolRegistry


@dataclass(frozen=True, slots=True)
class ToolCheck:
    problems: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)  # names online, file ids offline

    def summary(self) -> str:
        return f"tools: {', '.join(self.tools) or 'none'}"


def check_tools(
    root: Path, *, offline: bool, environ: Mapping[str, str] | None = None
) -> ToolCheck:
    environ = os.environ if environ is None else environ
    if offline:
        try:
            declarations = load_declarations(root, Environment(environ))
        except CatalogError as error:
            return ToolCheck(problems=error.problems)
        return ToolCheck(tools=sorted({*BUILTIN_IDS, *(d.id for d in declarations)}))
    return asyncio.run(_check_online(root, environ))


async def _check_online(root: Path, environ: Mapping[str, str]) -> ToolCheck:
    registry = ToolRegistry(environ=environ)
    try:
        tools = await registry.start(root)  # stops what it started if it fails
    except CatalogError as error:
        return ToolCheck(problems=error.problems)
    try:
        return ToolCheck(tools=sorted(entry["name"] for entry in tools.public()))
    finally:
        await registry.aclose()
