"""Tool registries on a catalog folder of the test's own (tests/test_tools_*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from parley.tools.registry import ToolRegistry

Start = Callable[[Mapping[str, str]], Awaitable[ToolRegistry]]


def write_tool(root: Path, tool_id: str, **fields: Any) -> None:
    """Write ``tools/<tool_id>.yaml`` in the catalog at ``root``."""
    (root / "tools").mkdir(exist_ok=True)
    text = yaml.safe_dump({"id": tool_id, **fields}, sort_keys=False)
    (root / "tools" / f"{tool_id}.yaml").write_text(text)


@asynccontextmanager
async def registries(root: Path, **options: Any) -> AsyncIterator[Start]:
    """Yields ``start(environ)``, which starts a ``ToolRegistry(environ=environ, **options)``
    on the catalog at ``root``; every registry started is closed on the way out."""
    started: list[ToolRegistry] = []

    async def start(environ: Mapping[str, str]) -> ToolRegistry:
        registry = ToolRegistry(environ=environ, **options)
        await registry.start(root)
        started.append(registry)
        return registry

    yield start
    for registry in started:
        await registry.aclose()
