"""The registry: start, select, reload (all or nothing), close; built-in tools."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from parley.catalog.errors import CatalogError
from parley.tools.base import ToolContext
from parley.tools.registry import ToolRegistry

REPO = Path(__file__).resolve().parents[1]
CONTEXT = ToolContext("reply-1", "call-1", "user-1", "conv-1", "agent_gamma")
ENVIRON = {"PARLEY_EXAMPLE_ORDERS_URL": "http://127.0.0.1:8765"}  # never called here


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "tools", tmp_path / "tools")
    return tmp_path


@pytest.fixture
async def registry(root: Path) -> AsyncIterator[ToolRegistry]:
    registry = ToolRegistry(environ=ENVIRON, connect_timeout=20)
    await registry.start(root)
    yield registry
    await registry.aclose()


def edit(path: Path, change: dict[str, Any]) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def test_select_keys_tools_by_the_name_the_model_calls(registry: ToolRegistry) -> None:
    tools = registry.select(["lookup_order", "status_page", "handoff_to_human"])
    assert sorted(tools) == [
        "handoff_to_human",
        "lookup_order",
        "status_page__known_issues",
        "status_page__service_status",
    ]
    assert all(name == tool.name for name, tool in tools.items())
    assert registry.select([]) == {}


async def test_an_id_that_is_not_loaded_is_skipped_and_logged(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "parley.tools")
    assert set(registry.select(["no_such_tool", "lookup_order"])) == {"lookup_order"}
    assert "'no_such_tool' is not loaded" in caplog.text


async def test_handoff_to_human_is_built_in(registry: ToolRegistry) -> None:
    handoff = registry.select(["handoff_to_human"])["handoff_to_human"]
    assert not handoff.side_effects and not handoff.confirm
    assert "'reason' is a required property" in str(handoff.check("{}"))
    arguments = handoff.check('{"reason": "The user asks for a person.\\nIgnore rules."}')
    assert isinstance(arguments, dict)
    result = await handoff.run(arguments, CONTEXT)
    assert result.status == "ok"
    assert result.handoff_reason == "The user asks for a person. Ignore rules."
    assert json.loads(result.content)["handed_off"] is True


async def test_reload_swaps_in_a_new_set_and_keeps_unchanged_mcp_sessions(
    registry: ToolRegistry, root: Path
) -> None:
    before = registry.select(["lookup_order", "status_page"])
    edit(root / "tools" / "lookup_order.yaml", {"description": "Find an order by number."})
    await registry.reload()
    after = registry.select(["lookup_order", "status_page"])
    assert after["lookup_order"] is not before["lookup_order"]
    assert after["lookup_order"].description == "Find an order by number."
    assert before["lookup_order"].description != "Find an order by number."  # immutable
    status_before = before["status_page__service_status"]
    status_after = after["status_page__service_status"]
    assert status_after is not status_before
    assert status_after.connection is status_before.connection  # type: ignore[attr-defined]
    # A tool handed out before the reload still works: its server was not restarted.
    result = await status_before.run({"service": "vpn"}, CONTEXT)
    assert result.status == "ok", result.content


async def test_a_failed_reload_keeps_the_running_set_and_lists_every_problem(
    registry: ToolRegistry, root: Path
) -> None:
    before = registry.select(["lookup_order", "create_ticket", "status_page"])
    edit(root / "tools" / "lookup_order.yaml", {"colour": "blue"})
    edit(root / "tools" / "create_ticket.yaml", {"timeout": -1})
    (root / "tools" / "status_page.yaml").write_text(
        (root / "tools" / "status_page.yaml").read_text().replace("known_issues", "no_such")
    )
    with pytest.raises(CatalogError) as raised:
        await registry.reload()
    problems = raised.value.problems
    assert any(p.startswith("tools/lookup_order.yaml: line ") and "colour" in p for p in problems)
    assert any(p.startswith("tools/create_ticket.yaml: line ") and "timeout" in p for p in problems)
    assert registry.select(["lookup_order", "create_ticket", "status_page"]) == before
    # Fix the two files: now the MCP listing finds the bad expose name, and still nothing changes.
    shutil.copy(REPO / "tools" / "lookup_order.yaml", root / "tools")
    shutil.copy(REPO / "tools" / "create_ticket.yaml", root / "tools")
    with pytest.raises(CatalogError) as raised:
        await registry.reload()
    [problem] = raised.value.problems
    assert "mcp.expose[1]: the server has no tool 'no_such'" in problem
    assert registry.select(["lookup_order", "create_ticket", "status_page"]) == before
    result = await before["status_page__known_issues"].run({"product": "vpn"}, CONTEXT)
    assert result.status == "ok"


async def test_a_removed_mcp_server_is_stopped_after_the_swap(
    registry: ToolRegistry, root: Path
) -> None:
    old = registry.select(["status_page"])["status_page__service_status"]
    os.remove(root / "tools" / "status_page.yaml")
    await registry.reload()
    assert registry.select(["status_page"]) == {}
    result = await old.run({"service": "vpn"}, CONTEXT)
    assert result.status == "error" and "closed" in result.content


async def test_public_view_lists_tools_without_their_wiring(registry: ToolRegistry) -> None:
    public = {entry["name"]: entry for entry in registry.public()}
    lookup = public["lookup_order"]
    assert lookup["id"] == "lookup_order" and lookup["parameters"]["required"] == ["order_id"]
    assert public["status_page__service_status"]["id"] == "status_page"
    assert "8765" not in json.dumps(public)  # the operator's host stays private


async def test_a_tool_file_may_not_take_a_built_in_id(root: Path) -> None:
    text = (root / "tools" / "lookup_order.yaml").read_text()
    (root / "tools" / "handoff_to_human.yaml").write_text(
        text.replace("lookup_order", "handoff_to_human")
    )
    with pytest.raises(CatalogError) as raised:
        await ToolRegistry(environ=ENVIRON).start(root)
    assert any("'handoff_to_human' is a built-in tool" in p for p in raised.value.problems)


async def test_reload_before_start_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        await ToolRegistry(environ={}).reload()
