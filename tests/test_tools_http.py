"""HTTP tools against real servers: the example order service and a misbehaving one.

Both run on real sockets (uvicorn on a thread). Tool files are written into
a temporary catalog and loaded through :class:`ToolRegistry`, as in production.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from parley.catalog.errors import CatalogError
from parley.examples.background import BackgroundServer
from parley.examples.orders import ORDERS_URL_ENV, start_orders_service
from parley.tools.base import Tool, ToolContext, ToolResult
from support.registries import Start, registries, write_tool

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-token-0123456789"
CONTEXT = ToolContext("reply-1", "call-1", "user-1", "conv-1", "agent_gamma")


class Quirks:
    """A service that misbehaves on purpose, and records what reached it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    async def _record(self, request: Request) -> dict[str, Any]:
        seen = {
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": dict(request.headers),
            "body": (await request.body()).decode(),
        }
        with self._lock:
            self._requests.append(seen)
        return seen

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            return JSONResponse(await self._record(request))

        async def slow(request: Request) -> Response:
            await asyncio.Event().wait()  # never answers; the tool's timeout must
            raise AssertionError("unreachable")

        async def big(request: Request) -> Response:
            return JSONResponse({"blob": "x" * 5000})

        async def big_stream(request: Request) -> Response:
            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"blob": "'
                for _ in range(50):
                    yield b"x" * 100
                yield b'"}'

            return StreamingResponse(chunks(), media_type="application/json")

        async def landed(request: Request) -> Response:
            await self._record(request)
            return JSONResponse({"landed": True})

        async def leak(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            return PlainTextResponse(f"bad token {auth}", status_code=500)

        async def echo_auth(request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            return JSONResponse({"your_token": token})  # the secret part, without "Bearer"

        return Starlette(
            routes=[
                Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE"]),
                Route("/slow", slow),
                Route("/big", big),
                Route("/big-stream", big_stream),
                Route("/text", lambda r: PlainTextResponse("hello, not JSON")),
                Route("/fail", lambda r: JSONResponse({"error": "db exploded"}, 500)),
                Route("/redirect", lambda r: RedirectResponse("/landed", 302)),
                Route("/landed", landed),
                Route("/leak", leak),
                Route("/echo-auth", echo_auth),
            ]
        )


@pytest.fixture(scope="module")
def quirks() -> Iterator[tuple[Quirks, str]]:
    service = Quirks()
    with BackgroundServer(service.app()) as server:
        yield service, server.url


@pytest.fixture
def orders_url() -> Iterator[str]:
    with start_orders_service() as server:  # a fresh service: no tickets yet
        yield server.url


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    async with registries(tmp_path) as start:
        yield start


def http_tool(
    root: Path,
    tool_id: str,
    url: str,
    *,
    properties: dict[str, Any] | None = None,
    required: list[str] | None = None,
    additional: bool = False,
    method: str = "GET",
    traits: dict[str, Any] | None = None,
    **http: Any,
) -> None:
    parameters = {
        "type": "object",
        "properties": properties or {},
        "required": required or [],
        "additionalProperties": additional,
    }
    write_tool(
        root,
        tool_id,
        description=f"test tool {tool_id}",
        parameters=parameters,
        **(traits or {}),
        http={"method": method, "url": url, **http},
    )


async def call(tool: Tool, arguments: dict[str, Any], context: ToolContext = CONTEXT) -> ToolResult:
    checked = tool.check(json.dumps(arguments))
    assert isinstance(checked, dict), checked
    return await tool.run(checked, context)


def shipped(root: Path, *tool_ids: str) -> None:
    (root / "tools").mkdir(exist_ok=True)
    for tool_id in tool_ids:
        shutil.copy(REPO / "tools" / f"{tool_id}.yaml", root / "tools")


# -- the example order service -------------------------------------------------------


async def test_lookup_shows_the_model_only_the_listed_fields(
    tmp_path: Path, start: Start, orders_url: str
) -> None:
    shipped(tmp_path, "lookup_order")
    registry = await start({ORDERS_URL_ENV: orders_url})
    result = await call(registry.select(["lookup_order"])["lookup_order"], {"order_id": "1042"})
    assert result.status == "ok", result.content
    order = json.loads(result.content)
    assert order["id"] == "1042" and order["status"] == "shipped"
    assert order["items"] == [{"name": "Wireless keyboard", "quantity": 1}]  # no sku
    assert order["shipping"]["carrier"] == "DHL"
    assert "customer" not in order and "ada@example.com" not in result.content
    assert result.summary == "lookup_order: HTTP 200"


async def test_an_unknown_order_is_an_error_result(
    tmp_path: Path, start: Start, orders_url: str
) -> None:
    shipped(tmp_path, "lookup_order")
    registry = await start({ORDERS_URL_ENV: orders_url})
    result = await call(registry.select(["lookup_order"])["lookup_order"], {"order_id": "9999"})
    assert result.status == "error"
    assert "HTTP 404" in result.content and "no such order" in result.content


async def test_a_retried_ticket_is_created_exactly_once(
    tmp_path: Path, start: Start, orders_url: str
) -> None:
    shipped(tmp_path, "create_ticket", "lookup_order")
    registry = await start({ORDERS_URL_ENV: orders_url})
    tool = registry.select(["create_ticket"])["create_ticket"]
    assert tool.side_effects and tool.confirm
    arguments = {"subject": "Keyboard keys stick", "description": "Since Monday, after a spill."}
    # Five attempts at one call (same reply and call id), two of them concurrent.
    arguments["order_id"] = "1042"
    first = await call(tool, arguments)
    retries = await asyncio.gather(call(tool, arguments), call(tool, arguments))
    again = [await call(tool, arguments) for _ in range(2)]
    assert first.status == "ok", first.content
    assert {r.content for r in [first, *retries, *again]} == {first.content}
    other = await call(tool, arguments, ToolContext("reply-1", "call-2", "user-1", "c", "a"))
    assert other.status == "ok", other.content
    assert json.loads(other.content)["id"] != json.loads(first.content)["id"]
    async with asyncio.timeout(5):
        listed = await _get_json(f"{orders_url}/tickets")
    assert listed["created"] == 2


# -- what is sent, and to where --------------------------------------------------------


async def test_only_declared_arguments_are_sent_where_the_file_says(
    tmp_path: Path, start: Start, quirks: tuple[Quirks, str]
) -> None:
    service, url = quirks
    http_tool(
        tmp_path,
        "file_note",
        "${env:QUIRKS}/echo/notes/{note_id}",
        method="POST",
        properties={k: {"type": "string"} for k in ("note_id", "text", "tag")},
        required=["note_id"],
        additional=True,  # the schema lets extra arguments through; they are still not sent
        query=["tag"],
        body=["text"],
        traits={"side_effects": True},
    )
    registry = await start({"QUIRKS": url})
    service.clear()
    tool = registry.select(["file_note"])["file_note"]
    result = await call(tool, {"note_id": "n/../1?x#y", "text": "hi", "tag": "a b", "extra": "no"})
    assert result.status == "ok", result.content
    [seen] = service.requests
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/echo/notes/n%2F..%2F1%3Fx%23y"
    assert seen["query"] == "tag=a%20b"
    assert json.loads(seen["body"]) == {"text": "hi"}
    assert seen["headers"]["idempotency-key"] == CONTEXT.idempotency_key
    assert "cookie" not in seen["headers"]


async def test_no_idempotency_key_without_side_effects(
    tmp_path: Path, start: Start, quirks: tuple[Quirks, str]
) -> None:
    service, url = quirks
    http_tool(tmp_path, "peek", "${env:QUIRKS}/echo/peek")
    registry = await start({"QUIRKS": url})
    service.clear()
    assert (await call(registry.select(["peek"])["peek"], {})).status == "ok"
    [seen] = service.requests
    assert "idempotency-key" not in seen["headers"] and seen["body"] == ""


async def test_a_redirect_is_not_followed(
    tmp_path: Path, start: Start, quirks: tuple[Quirks, str]
) -> None:
    service, url = quirks
    http_tool(tmp_path, "hop", "${env:QUIRKS}/redirect")
    registry = await start({"QUIRKS": url})
    service.clear()
    result = await call(registry.select(["hop"])["hop"], {})
    assert result.status == "error" and "redirect (HTTP 302)" in result.content
    assert service.requests == []  # /landed was never called


# -- failures become error results ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "extra", "expected"),
    [
        ("/big", {"max_response_bytes": 1000}, "larger than 1000 bytes"),
        ("/big-stream", {"max_response_bytes": 1000}, "larger than 1000 bytes"),
        ("/text", {}, "did not answer with JSON"),
        ("/fail", {}, 'HTTP 500: {"error":"db exploded"}'),
    ],
)
async def test_bad_responses_are_error_results(
    tmp_path: Path,
    start: Start,
    quirks: tuple[Quirks, str],
    path: str,
    extra: dict[str, Any],
    expected: str,
) -> None:
    http_tool(tmp_path, "probe", "${env:QUIRKS}" + path, **extra)
    registry = await start({"QUIRKS": quirks[1]})
    result = await call(registry.select(["probe"])["probe"], {})
    assert result.status == "error"
    assert expected in result.content and result.content.startswith("probe: ")


async def test_a_slow_service_times_out(
    tmp_path: Path, start: Start, quirks: tuple[Quirks, str]
) -> None:
    http_tool(tmp_path, "sloth", "${env:QUIRKS}/slow", traits={"timeout": 0.3})
    registry = await start({"QUIRKS": quirks[1]})
    began = time.monotonic()
    result = await call(registry.select(["sloth"])["sloth"], {})
    assert result.status == "error" and "no answer within 0.3 seconds" in result.content
    assert time.monotonic() - began < 5


async def test_an_unreachable_service_is_an_error_result(tmp_path: Path, start: Start) -> None:
    with BackgroundServer(Starlette()) as server:
        closed = server.url  # nothing listens there once it stops
    http_tool(tmp_path, "gone", "${env:GONE}/x")
    registry = await start({"GONE": closed})
    result = await call(registry.select(["gone"])["gone"], {})
    assert result.status == "error" and "cannot reach the service" in result.content


# -- secrets ----------------------------------------------------------------------------


async def test_header_secrets_never_reach_logs_reprs_or_the_model(
    tmp_path: Path,
    start: Start,
    quirks: tuple[Quirks, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    service, url = quirks
    headers = {"Authorization": "Bearer ${env:CRM_TOKEN}"}
    for tool_id, path in [("leaky", "/leak"), ("mirror", "/echo-auth"), ("echo", "/echo/x")]:
        http_tool(tmp_path, tool_id, "${env:QUIRKS}" + path, headers=headers)
    registry = await start({"QUIRKS": url, "CRM_TOKEN": SECRET})
    tools = registry.select(["leaky", "mirror", "echo"])
    service.clear()
    results = [await call(tool, {}) for tool in tools.values()]
    assert [r.status for r in results] == ["error", "ok", "ok"]
    assert service.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # it was sent
    shown = [r.content for r in results] + [r.summary for r in results]
    shown += [repr(tool) for tool in tools.values()] + [json.dumps(registry.public())]
    assert all(SECRET not in text for text in shown), shown
    assert json.loads(results[1].content) == {"your_token": "***"}  # echoed back, scrubbed
    assert SECRET not in caplog.text


async def test_a_missing_secret_is_a_load_problem_that_names_only_the_variable(
    tmp_path: Path, start: Start
) -> None:
    http_tool(tmp_path, "crm", "https://crm.example.com/x", headers={"X-Key": "${env:CRM_KEY}"})
    with pytest.raises(CatalogError) as raised:
        await start({})
    assert "tools/crm.yaml: line" in str(raised.value)
    assert "http.headers.X-Key: environment variable CRM_KEY is not set" in str(raised.value)


async def _get_json(url: str) -> Any:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()
