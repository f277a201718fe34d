"""``GET /openapi.json`` and ``GET /docs``: valid, complete, and true of the running server.

The document must be valid OpenAPI 3.1 and describe every route the app
serves (walked from the Starlette app, so a new undocumented route fails
here). Schemathesis then generates requests for each operation, valid and
invalid, against a real server: none may answer 5xx, and every answer must
have a documented status, content type and body.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from openapi_spec_validator import OpenAPIV31SpecValidator
from playwright.async_api import Browser, expect
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from conftest import REPO, TokenFactory
from parley.app import create_app
from parley.config import Settings
from parley.transport.openapi import NOT_DESCRIBED
from support.browser import launched_browser, watch_context
from support.server import ParleyServer

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]
# Generated requests per operation and mode, besides its examples and boundary values.
FUZZ_EXAMPLES = 20
# Agents and knowledge collections of the test catalog the fuzzer may name.
FUZZ_AGENTS = ["agent_gamma", "agent_anthropic", "agent_kb", "agent_demo_tools", "agent_budget"]
FUZZ_COLLECTIONS = ["kb_lab", "kb_other"]
SEEDED_CONVERSATIONS = 3
# Operations that cannot be fuzzed meaningfully, and why.
NOT_FUZZED = {  # by operation id
    "get_v1_admin_events": "an event stream that stays open for five minutes by design",
    "put_v1_admin_knowledge_collection_documents_name": (
        "stores whatever bytes it gets in the knowledge base the other tests search; "
        "test_the_operations_not_fuzzed_answer_as_documented checks its answers"
    ),
}


@pytest.fixture(scope="module")
def document(server: ParleyServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


def _full_app() -> Starlette:
    """The app with every optional route switched on (it is not started)."""
    return create_app(
        Settings(
            redis_url="redis://127.0.0.1:9/0",  # never used: no request reaches storage
            database_url="postgresql://nobody@127.0.0.1:9/none",
            jwt_secret="x" * 40,
            metrics_token="m" * 32,
            dev_login=True,
            web_dir=str(REPO / "web"),
        )
    )


def _routes(app: Starlette) -> Iterator[tuple[str, str]]:
    """``(METHOD, path)`` of every route; a mount as ``path/*``."""
    for route in app.routes:
        if isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path
        elif isinstance(route, WebSocketRoute):
            yield "GET", route.path
        elif isinstance(route, Mount):
            yield "GET", f"{route.path}/*"
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


def test_every_route_is_described() -> None:
    app = _full_app()
    spec = TestClient(app).get("/openapi.json").json()  # no lifespan: it needs no services
    described = {
        (method.upper(), path) for path, methods in spec["paths"].items() for method in methods
    }
    routes = set(_routes(app))
    missing = sorted(routes - described - set(NOT_DESCRIBED))
    assert not missing, f"routes missing from the OpenAPI document: {missing}"
    assert not described - routes, "the document describes routes the app does not serve"
    assert ("GET", "/metrics") in described  # optional routes are described when served
    assert set(NOT_DESCRIBED) <= routes, "NOT_DESCRIBED names routes that are gone"


def test_the_docs_page_reads_under_the_strict_csp(
    server: ParleyServer, document: dict[str, Any]
) -> None:
    response = httpx.get(f"{server.url}/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    html = response.text
    assert "<script" not in html and "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    for href in re.findall(r'href="(/static/[^"]+)"', html):
        assert httpx.get(f"{server.url}{href}").status_code == 200, href
    for path in document["paths"]:
        assert f"<code>{path}</code>" in html
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in html


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched_browser(timeout_ms=10_000) as instance:
        yield instance


@pytest.mark.browser
async def test_the_docs_page_renders_in_a_browser_without_csp_violations(
    server: ParleyServer, browser: Browser, document: dict[str, Any], tmp_path: Path
) -> None:
    context = await browser.new_context(base_url=server.url)
    watch = await watch_context(context)
    page = await context.new_page()
    watch.attach(page)
    await page.goto("/docs")
    await expect(page.locator("h1")).to_contain_text("Parley API")
    operations = sum(len(methods) for methods in document["paths"].values())
    await expect(page.locator("article.api-op")).to_have_count(operations)
    # The stylesheet applied (the page scrolls, unlike the chat page it borrows app.css from).
    overflow = await page.evaluate("getComputedStyle(document.body).overflowY")
    assert overflow == "auto"
    await page.screenshot(path=tmp_path / "docs.png", full_page=False)
    await context.close()
    assert watch.csp_violations == [] and watch.csp_console_errors == []
    assert watch.page_errors == [] and watch.console_errors == []


async def test_the_operations_not_fuzzed_answer_as_documented(
    server: ParleyServer, document: dict[str, Any], make_token: TokenFactory
) -> None:
    schema = schemathesis.openapi.from_dict(document)
    _, token = make_token(admin=True)
    headers = {"Authorization": f"Bearer {token}"}
    path = "/v1/admin/knowledge/{collection}/documents/{name}"
    url = path.format(collection="kb_other", name=f"openapi-{uuid.uuid4().hex[:8]}.md")
    upload = schema[path]["PUT"]
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
        text = b"# Zebra crossings\n\nStripes on the road where walkers cross.\n"
        added = await http.put(url, content=text)
        assert added.status_code == 201, added.text
        upload.validate_response(added)
        replaced = await http.put(url, content=text + b"\nMind the cars.\n")
        assert replaced.status_code == 200, replaced.text
        upload.validate_response(replaced)
        assert (await http.delete(url)).status_code == 204
        async with http.stream("GET", "/v1/admin/events") as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.aiter_lines()
            while (line := await anext(lines)) != "event: ready":
                assert line.startswith("retry:") or not line, line
            assert await anext(lines) == "data: {}"


# -- schemathesis --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    """A server of its own: the shared one's per-user rate limit would answer most of
    the fuzzer's requests with 429, and nothing else would be tested."""
    with ParleyServer(
        {**server_env, "PARLEY_REST_RATE_LIMIT": "1000000/minute"}, name="parley-fuzz"
    ) as instance:
        yield instance


def _seed(url: str, token: str) -> dict[str, list[str]]:
    """Conversations, messages and replies of the fuzzing user, for the fuzzer to find."""
    found: dict[str, list[str]] = {"conversations": [], "messages": [], "replies": []}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for agent in FUZZ_AGENTS[:SEEDED_CONVERSATIONS]:
            response = client.post("/v1/chat", json={"agent": agent, "message": "Hello"})
            assert response.status_code == 200, response.text
            answer = response.json()
            found["conversations"].append(answer["conversation_id"])
            found["messages"].append(answer["reply"]["message_id"])
            found["replies"].append(answer["reply_id"])
    return found


def _config(seeded: dict[str, list[str]]) -> str:
    """schemathesis.toml: real agents and ids, sent in half the requests that take them."""
    dictionaries = {
        "agents": FUZZ_AGENTS,
        "collections": FUZZ_COLLECTIONS,
        **seeded,
    }
    bindings = {
        "body.agent": "agents",
        "body.model": "agents",
        "path.collection": "collections",
        "path.conversation_id": "conversations",
        "path.message_id": "messages",
        "path.reply_id": "replies",
    }
    lines = ["[parameters]"]
    lines += [
        f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}'
        for key, name in bindings.items()
    ]
    for name, values in dictionaries.items():
        lines += ["", f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    return "\n".join(lines) + "\n"


def test_no_operation_fails_or_breaks_its_schema(
    fuzz_server: ParleyServer, make_token: TokenFactory, tmp_path: Path
) -> None:
    """``schemathesis run``: examples, boundary values, then generated requests (valid
    and invalid) for every operation. No 5xx, and every answer as documented."""
    _, token = make_token(admin=True)  # an admin reaches the admin operations too
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(_seed(fuzz_server.url, token)))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        f"--config-file={config}",
        "run",
        f"{fuzz_server.url}/openapi.json",
        f"--header=Authorization: Bearer {token}",
        f"--checks={','.join(CHECKS)}",
        "--phases=examples,coverage,fuzzing",
        f"--max-examples={FUZZ_EXAMPLES}",
        "--generation-deterministic",  # the same requests on every run
        "--workers=1",
        "--request-timeout=30",
        "--no-color",
        *(f"--exclude-operation-id={operation_id}" for operation_id in NOT_FUZZED),
    ]
    run = subprocess.run(  # in tmp_path, where it keeps its cache
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    print(run.stdout[-4_000:])  # the summary, with -s
    assert run.returncode == 0, run.stdout[-30_000:] + run.stderr[-5_000:]
