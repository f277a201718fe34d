"""MCP tools against real servers: the example server over stdio and streamable HTTP,
and a deliberately fragile server that crashes and hangs on request."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.catalog.errors import CatalogError
from parley.examples.mcp_server import MCP_PATH, start_http_server
from parley.tools.base import Tool, ToolContext, ToolResult
from parley.tools.registry import ToolRegistry
from support.registries import Start, registries, write_tool

REPO = Path(__file__).resolve().parents[1]
CONTEXT = ToolContext("reply-1", "call-1", "user-1", "conv-1", "agent_gamma")

FRAGILE_SERVER = '''
import os

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("fragile", log_level="WARNING")


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def crash() -> str:
    """Exits in the middle of the call."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answers."""
    await anyio.sleep_forever()
    return "unreachable"


@server.tool()
def env(name: str) -> str:
    """One of this server's environment variables."""
    return os.environ.get(name, "<unset>")


@server.tool()
def env_is(name: str, value: str) -> bool:
    """Whether an environment variable has this value (without echoing it)."""
    return os.environ.get(name) == value


server.run()
'''


@pytest.fixture(scope="module")
def http_mcp_url() -> Iterator[str]:
    with start_http_server() as server:
        yield server.url + MCP_PATH


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    async with registries(tmp_path, connect_timeout=20) as start:
        yield start


def fragile(root: Path, tool_id: str = "fragile", **fields: Any) -> None:
    """The fragile server as a tool file; its script sits in the catalog root (the cwd)."""
    (root / "fragile_server.py").write_text(FRAGILE_SERVER)
    mcp = {"command": ["${python}", "fragile_server.py"], **fields.pop("mcp", {})}
    write_tool(root, tool_id, **{"timeout": 5, **fields}, mcp=mcp)


async def call(tool: Tool, arguments: dict[str, Any]) -> ToolResult:
    checked = tool.check(json.dumps(arguments))
    assert isinstance(checked, dict), checked
    return await tool.run(checked, CONTEXT)


async def pid_of(tool: Tool) -> int:
    result = await call(tool, {})
    assert result.status == "ok", result.content
    return int(json.loads(result.content)["result"])


# -- the example server ---------------------------------------------------------------


async def test_stdio_server_tools_are_exposed_under_the_file_id(
    tmp_path: Path, start: Start
) -> None:
    (tmp_path / "tools").mkdir()
    shutil.copy(REPO / "tools" / "status_page.yaml", tmp_path / "tools")
    registry = await start({})
    tools = registry.select(["status_page"])
    # expose lists two of the server's three tools
    assert set(tools) == {"status_page__service_status", "status_page__known_issues"}
    status = tools["status_page__service_status"]
    assert "current status" in status.description
    assert status.parameters["required"] == ["service"]
    result = await call(status, {"service": "vpn"})
    assert result.status == "ok", result.content
    assert json.loads(result.content)["status"] == "degraded"
    issues = await call(tools["status_page__known_issues"], {"product": "laptop"})
    assert json.loads(issues.content)["issues"][0]["id"] == "KI-311"


async def test_arguments_are_checked_against_the_servers_schema(
    tmp_path: Path, start: Start
) -> None:
    (tmp_path / "tools").mkdir()
    shutil.copy(REPO / "tools" / "status_page.yaml", tmp_path / "tools")
    registry = await start({})
    status = registry.select(["status_page"])["status_page__service_status"]
    assert "'service' is a required property" in str(status.check("{}"))
    assert "is not of type 'string'" in str(status.check('{"service": 3}'))
    assert "not valid JSON" in str(status.check('{"service": '))


async def test_a_failing_mcp_tool_is_an_error_result(tmp_path: Path, start: Start) -> None:
    (tmp_path / "tools").mkdir()
    shutil.copy(REPO / "tools" / "status_page.yaml", tmp_path / "tools")
    registry = await start({})
    status = registry.select(["status_page"])["status_page__service_status"]
    result = await call(status, {"service": "teleporter"})
    assert result.status == "error"
    assert "unknown service 'teleporter'" in result.content
    assert (await call(status, {"service": "email"})).status == "ok"  # the session is fine


async def test_streamable_http_server(tmp_path: Path, start: Start, http_mcp_url: str) -> None:
    write_tool(tmp_path, "status_http", mcp={"url": "${env:STATUS_MCP_URL}"})
    registry = await start({"STATUS_MCP_URL": http_mcp_url})
    tools = registry.select(["status_http"])
    assert set(tools) == {
        "status_http__service_status",
        "status_http__known_issues",
        "status_http__list_services",
    }
    listed = await call(tools["status_http__list_services"], {})
    assert "vpn" in json.loads(listed.content)["result"]
    failed = await call(tools["status_http__service_status"], {"service": "nope"})
    assert failed.status == "error" and "unknown service" in failed.content


async def test_expose_names_the_server_does_not_have_are_problems(
    tmp_path: Path, start: Start, http_mcp_url: str
) -> None:
    write_tool(
        tmp_path,
        "status_http",
        mcp={"url": "${env:STATUS_MCP_URL}", "expose": ["service_status", "reboot_everything"]},
    )
    with pytest.raises(CatalogError) as raised:
        await start({"STATUS_MCP_URL": http_mcp_url})
    [problem] = raised.value.problems
    assert problem.startswith("tools/status_http.yaml: line 6: mcp.expose[1]: ")
    assert "no tool 'reboot_everything'" in problem and "list_services" in problem


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (["/nonexistent/mcp-server"], "did not start"),
        (["${python}", "-c", "import sys; sys.exit(3)"], "did not start"),
    ],
)
async def test_a_server_that_does_not_start_is_a_problem(
    tmp_path: Path, start: Start, command: list[str], reason: str
) -> None:
    write_tool(tmp_path, "broken", mcp={"command": command})
    began = time.monotonic()
    with pytest.raises(CatalogError) as raised:
        await start({})
    [problem] = raised.value.problems
    assert problem.startswith("tools/broken.yaml: line 2: mcp: ") and reason in problem
    assert time.monotonic() - began < 15


async def test_a_url_secret_is_not_shown_when_the_server_is_unreachable(
    tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    write_tool(tmp_path, "remote", mcp={"url": "${env:REMOTE_MCP}"})
    secret_url = "http://127.0.0.1:9/mcp?token=tok-0123456789abcdef"
    with pytest.raises(CatalogError) as raised:
        await start({"REMOTE_MCP": secret_url})
    assert "tok-0123456789abcdef" not in str(raised.value)
    assert str(raised.value).startswith("tools/remote.yaml: line 2: mcp: ")
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("parley")]
    assert not any("tok-0123456789abcdef" in message for message in ours)


# -- a fragile server -------------------------------------------------------------------


async def test_a_crash_mid_call_is_an_error_and_the_next_call_restarts_the_server(
    tmp_path: Path, start: Start
) -> None:
    fragile(tmp_path)
    registry = await start({})
    tools = registry.select(["fragile"])
    before = await pid_of(tools["fragile__pid"])
    crashed = await call(tools["fragile__crash"], {})
    assert crashed.status == "error"
    assert "closed the connection" in crashed.content
    after = await pid_of(tools["fragile__pid"])
    assert after != before


async def test_a_server_killed_while_idle_is_restarted(tmp_path: Path, start: Start) -> None:
    fragile(tmp_path, "reader")
    fragile(tmp_path, "writer", side_effects=True, mcp={"env": {"ROLE": "writer"}})
    registry = await start({})
    reader = registry.select(["reader"])["reader__pid"]
    writer = registry.select(["writer"])["writer__pid"]
    first_reader, first_writer = await pid_of(reader), await pid_of(writer)
    assert first_reader != first_writer  # one process per server configuration
    os.kill(first_reader, signal.SIGKILL)
    os.kill(first_writer, signal.SIGKILL)
    # Without side effects a call is safe to repeat: it is retried on a fresh server.
    assert await pid_of(reader) not in {first_reader, first_writer}
    # With side effects it is not: the call fails, and the next one starts the server.
    failed = await call(writer, {})
    assert failed.status == "error" and "closed the connection" in failed.content
    assert await pid_of(writer) != first_writer


async def test_a_hung_call_times_out_and_the_session_survives(tmp_path: Path, start: Start) -> None:
    fragile(tmp_path, timeout=0.5)
    registry = await start({})
    tools = registry.select(["fragile"])
    before = await pid_of(tools["fragile__pid"])
    began = time.monotonic()
    hung = await call(tools["fragile__hang"], {})
    assert hung.status == "error" and hung.content.startswith("fragile__hang: ")
    assert "timed out" in hung.content
    assert time.monotonic() - began < 5
    assert await pid_of(tools["fragile__pid"]) == before


async def test_a_stdio_server_gets_its_env_and_not_parleys(
    tmp_path: Path, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_ONLY_SECRET", "parley-private")
    fragile(tmp_path, mcp={"env": {"API_TOKEN": "tok-${env:TOKEN_SOURCE}"}})
    registry = await start({"TOKEN_SOURCE": "0123456789"})
    tools = registry.select(["fragile"])
    given = await call(tools["fragile__env_is"], {"name": "API_TOKEN", "value": "tok-0123456789"})
    assert json.loads(given.content)["result"] is True
    private = await call(tools["fragile__env"], {"name": "PARLEY_ONLY_SECRET"})
    assert json.loads(private.content)["result"] == "<unset>"
    # A server echoing its own credentials does not hand them to the model, whole or in part.
    echoed = await call(tools["fragile__env"], {"name": "API_TOKEN"})
    assert "0123456789" not in echoed.content and "***" in echoed.content


async def test_aclose_stops_the_servers(tmp_path: Path) -> None:
    fragile(tmp_path)
    registry = ToolRegistry(environ={})
    await registry.start(tmp_path)
    tool = registry.select(["fragile"])["fragile__pid"]
    pid = await pid_of(tool)
    await registry.aclose()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (and reaped) once aclose returns
    result = await call(tool, {})
    assert result.status == "error" and "closed" in result.content
