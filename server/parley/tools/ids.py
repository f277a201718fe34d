"""Which tool ids exist, cheaply: what the catalog checks rule sets against.

Kept apart from the loaders so that loading the catalog does not import the
HTTP and MCP clients.
"""

from __future__ import annotations

from pathlib import Path

TOOLS_DIR = "tools"
HANDOFF = "handoff_to_human"
KNOWLEDGE_SEARCH = "knowledge_search"
BUILTIN_IDS = frozenset({HANDOFF, KNOWLEDGE_SEARCH})  # built-in tools: no file needed


def declared_tool_ids(root: Path) -> set[str]:
    """The ids a rule set may list: every ``tools/*.yaml`` file's name, and the built-ins.

    A file that fails to load still counts: its own problems say what to fix,
    so rule sets naming it are not reported a second time.
    """
    return {path.stem for path in (root / TOOLS_DIR).glob("*.yaml")} | BUILTIN_IDS
