"""The REST API against hostile or careless clients: bad text, races, unknown paths."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from conftest import TokenFactory
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer

CONCURRENT_RETRIES = 30


@pytest.fixture
async def http(server: ParleyServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=CONCURRENT_RETRIES)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "body",
    [
        {"agent": "agent_gamma", "message": "before\x00after"},
        {"agent": "agent_gamma", "message": "ring the \x07 bell"},
        {"agent": "agent_gamma", "message": "hello", "client_id": "c-\x00"},
        {"agent": "agent_gamma", "message": "hello", "client_id": "c-\x1b[31m"},
        {"agent": "agent_gamma", "message": "half a pair: \ud83d"},
    ],
    ids=["nul-text", "bell-text", "nul-client-id", "escape-client-id", "lone-surrogate"],
)
async def test_unstorable_text_is_a_bad_request(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory, body: dict[str, str]
) -> None:
    _, token = make_token()
    response = await http.post("/v1/chat", headers=bearer(token), content=json.dumps(body))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"
    listed = await http.get("/v1/conversations", headers=bearer(token))
    assert listed.json()["conversations"] == []
    assert fake.requests == []


async def test_overlong_idempotency_key_is_a_bad_request(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    _, token = make_token()
    response = await http.post(
        "/v1/chat",
        headers={**bearer(token), "Idempotency-Key": "k" * 129},
        json={"agent": "agent_gamma", "message": "hello"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Idempotency-Key:")


async def test_deeply_nested_body_is_a_bad_request(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    nested = "[" * 30_000 + "]" * 30_000
    body = '{"agent": "agent_gamma", "message": "hi", "x": ' + nested + "}"
    response = await http.post("/v1/chat", headers=bearer(make_token()[1]), content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.fixture
async def slow_key_claims(server: ParleyServer, db: asyncpg.Connection) -> AsyncIterator[None]:
    """Each new idempotency key takes 200 ms to commit.

    Concurrent claims of one key race only while the first claim is inserted
    but not yet committed: microseconds, normally. Held open by the database
    itself, the window is met by every concurrent request, not by luck.
    """
    await db.execute(
        "CREATE FUNCTION test_slow_claim() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$;"
        " CREATE TRIGGER test_slow_claim AFTER INSERT ON idempotency_keys"
        " FOR EACH ROW EXECUTE FUNCTION test_slow_claim()"
    )
    try:
        yield
    finally:
        await db.execute(
            "DROP TRIGGER test_slow_claim ON idempotency_keys; DROP FUNCTION test_slow_claim()"
        )


@pytest.mark.usefixtures("slow_key_claims")
async def test_concurrent_retries_with_one_idempotency_key_get_one_reply(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["One ", "answer ", "only."], delay=0.05))
    _, token = make_token()
    headers = {**bearer(token), "Idempotency-Key": "retry-storm"}
    body = {"agent": "agent_gamma", "message": "same question"}
    responses = await asyncio.gather(
        *(http.post("/v1/chat", headers=headers, json=body) for _ in range(CONCURRENT_RETRIES))
    )
    statuses = sorted({response.status_code for response in responses})
    assert set(statuses) <= {200, 409}, [r.text for r in responses if r.status_code >= 500]
    answered = [response.json() for response in responses if response.status_code == 200]
    assert answered
    assert {(a["conversation_id"], a["reply_id"]) for a in answered} == {
        (answered[0]["conversation_id"], answered[0]["reply_id"])
    }
    busy = [response.json() for response in responses if response.status_code == 409]
    assert all(b["error"]["code"] == "busy" for b in busy)
    assert len(fake.requests) == 1
    listed = await http.get("/v1/conversations", headers=bearer(token))
    assert [c["id"] for c in listed.json()["conversations"]] == [answered[0]["conversation_id"]]
    # Once the reply is stored, a retry gets the same result.
    again = await http.post("/v1/chat", headers=headers, json=body)
    assert again.status_code == 200
    assert again.json()["reply"] == answered[0]["reply"]


@pytest.mark.parametrize("path", ["/nowhere", "/v1/nowhere", "/static/nothing.css"])
async def test_unknown_paths_get_a_json_not_found(
    http: httpx.AsyncClient, make_token: TokenFactory, path: str
) -> None:
    response = await http.get(path, headers=bearer(make_token()[1]))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


async def test_wrong_method_gets_a_json_405_with_allow(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await http.get("/v1/chat", headers=bearer(make_token()[1]))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert "POST" in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/usage?days=²",  # str.isdigit() says yes, int() says no
        "/v1/usage?days=" + "1" * 5000,  # more digits than int() reads
        "/v1/admin/queue?limit=³",
        "/v1/admin/handoffs?limit=٣",  # an Arabic-Indic three
        "/v1/replies/r-1?after_seq=²",
        "/v1/admin/conversations?agent=a%00b",  # Postgres text holds no NUL
        "/v1/admin/conversations?user=a%00b",
        "/v1/admin/export.jsonl?agent=a%00b",
        "/v1/admin/conversations?before=0001-01-01T00:00:00%2B14:00|"
        "8f1f2a52-7d40-4a4c-9b51-2d6f1c0f3e4a",  # before year 1 in UTC
        "/v1/admin/conversations?before=9999-12-31T23:59:59-14:00|"
        "8f1f2a52-7d40-4a4c-9b51-2d6f1c0f3e4a",  # after year 9999 in UTC
    ],
)
async def test_malformed_query_parameters_are_bad_requests(
    http: httpx.AsyncClient, make_token: TokenFactory, path: str
) -> None:
    _, token = make_token(admin=True)
    response = await http.get(path, headers=bearer(token))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/conversations/{conversation}/sources/²"),
        ("GET", "/v1/conversations/{conversation}/sources/" + "9" * 5000),
        ("DELETE", "/v1/admin/knowledge/kb_lab/documents/a%00b.md"),
    ],
)
async def test_malformed_path_segments_name_nothing(
    http: httpx.AsyncClient, make_token: TokenFactory, method: str, path: str
) -> None:
    _, token = make_token(admin=True)
    started = await http.post(
        "/v1/chat", headers=bearer(token), json={"agent": "agent_kb", "message": "Hello"}
    )
    conversation = started.json()["conversation_id"]
    response = await http.request(
        method, path.format(conversation=conversation), headers=bearer(token)
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
