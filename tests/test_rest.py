"""The REST API against a real server: chat (JSON and SSE), reads, errors, limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conftest import TokenFactory
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer


@pytest.fixture
async def http(server: ParleyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sse_frames(body: str) -> list[tuple[str, dict[str, object]]]:
    frames = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        frames.append((lines["event"], json.loads(lines["data"])))
    return frames


async def test_chat_returns_the_finished_reply(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Try ", "turning it off."], prompt_tokens=40, completion_tokens=4))
    _, token = make_token()
    response = await http.post(
        "/v1/chat", headers=bearer(token), json={"agent": "agent_gamma", "message": "It broke"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reply"]["text"] == "Try turning it off."
    assert body["reply"]["status"] == "complete"
    assert body["usage"]["total_tokens"] == 44
    assert {"conversation_id", "message_id", "reply_id"} <= body.keys()
    stored = await http.get(f"/v1/conversations/{body['conversation_id']}", headers=bearer(token))
    messages = stored.json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "It broke"),
        ("assistant", "Try turning it off."),
    ]


async def test_a_first_message_stores_its_conversation_and_a_refused_one_stores_nothing(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    # The first reply spends 1,200 of agent_budget's 2,000 tokens a day; the next
    # would reserve its prompt plus 500 reply tokens, which no longer fits.
    fake.enqueue(Script(chunks=["Check the cable."], prompt_tokens=1000, completion_tokens=200))
    _, token = make_token()
    first = {"agent": "agent_budget", "message": "Printer   offline\nagain"}
    answered = await http.post("/v1/chat", headers=bearer(token), json=first)
    assert answered.status_code == 200, answered.text
    refused = await http.post("/v1/chat", headers=bearer(token), json=first)
    assert refused.json()["error"]["code"] == "budget_exceeded"
    listed = (await http.get("/v1/conversations", headers=bearer(token))).json()
    [conversation] = listed["conversations"]  # the refused message made none
    assert conversation["id"] == answered.json()["conversation_id"]
    assert (conversation["title"], conversation["message_count"]) == ("Printer offline again", 2)
    assert len(fake.requests) == 1


async def test_chat_answers_with_the_message_as_stored(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Noted."]))
    _, token = make_token()
    text = "My card is 4111 1111 1111 1111, it was declined"
    response = await http.post(
        "/v1/chat", headers=bearer(token), json={"agent": "agent_alpha", "message": text}
    )
    assert response.status_code == 200, response.text
    stored = response.json()["message"]
    assert stored["redacted"] is True
    assert "4111" not in stored["text"] and stored["text"].endswith(", it was declined")
    conversation = await http.get(
        f"/v1/conversations/{response.json()['conversation_id']}", headers=bearer(token)
    )
    assert conversation.json()["messages"][0]["content"] == stored["text"]


async def test_chat_continues_a_conversation(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    _, token = make_token()
    first = await http.post(
        "/v1/chat", headers=bearer(token), json={"agent": "agent_beta", "message": "one"}
    )
    conversation_id = first.json()["conversation_id"]
    second = await http.post(
        "/v1/chat",
        headers=bearer(token),
        json={"conversation_id": conversation_id, "message": "two"},
    )
    assert second.json()["conversation_id"] == conversation_id
    assert fake.requests[1].body["messages"][-1]["content"] == "two"


async def test_chat_streams_server_sent_events(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Hello", " world"]))
    _, token = make_token()
    response = await http.post(
        "/v1/chat",
        headers=bearer(token),
        json={"agent": "agent_gamma", "message": "hi", "stream": True},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = sse_frames(response.text)
    kinds = [kind for kind, _ in frames]
    assert kinds[0] == "accepted" and kinds[-1] == "done"
    deltas = [data for kind, data in frames if kind == "delta"]
    assert "".join(str(d["text"]) for d in deltas) == "Hello world"
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert all(kind == data["type"] for kind, data in frames)


async def test_idempotency_key_replays_without_a_new_llm_call(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    _, token = make_token()
    headers = {**bearer(token), "Idempotency-Key": "order-42"}
    body = {"agent": "agent_gamma", "message": "same question"}
    first = await http.post("/v1/chat", headers=headers, json=body)
    again = await http.post("/v1/chat", headers=headers, json=body)
    assert again.status_code == 200
    for field in ("conversation_id", "message_id", "reply_id", "reply"):
        assert again.json()[field] == first.json()[field]
    assert len(fake.requests) == 1
    other = await http.post("/v1/chat", headers=headers, json={**body, "message": "different"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "conflict"


async def test_upstream_failure_is_a_503_with_the_stored_ids(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(*[Script(status=500) for _ in range(6)])
    _, token = make_token()
    response = await http.post(
        "/v1/chat", headers=bearer(token), json={"agent": "agent_fallback", "message": "hi"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert response.json()["reply"]["status"] == "failed"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "bad_request"),
        ({"message": "no target"}, 400, "bad_request"),
        ({"agent": "agent_gamma", "conversation_id": "x", "message": "both"}, 400, "bad_request"),
        ({"agent": "agent_gamma", "message": ""}, 400, "bad_request"),
        ({"agent": "agent_nobody", "message": "hi"}, 404, "unknown_agent"),
        (
            {"conversation_id": "4f1e0b1c-0000-0000-0000-000000000000", "message": "hi"},
            404,
            "not_found",
        ),
        ({"agent": "agent_gamma", "message": "x" * 16_001}, 413, "too_large"),
    ],
)
async def test_chat_errors_are_typed(
    http: httpx.AsyncClient, make_token: TokenFactory, body: object, status: int, code: str
) -> None:
    _, token = make_token()
    content = body if isinstance(body, str) else json.dumps(body)
    response = await http.post("/v1/chat", headers=bearer(token), content=content)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("path", ["/v1/agents", "/v1/conversations", "/v1/usage"])
async def test_endpoints_need_a_valid_token(http: httpx.AsyncClient, path: str) -> None:
    missing = await http.get(path)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    forged = await http.get(path, headers=bearer("e30.e30.sig"))
    assert forged.status_code == 401


async def test_agents_are_listed_with_personality_and_domain(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await http.get("/v1/agents", headers=bearer(make_token()[1]))
    agents = {a["id"]: a for a in response.json()["agents"]}
    assert agents["agent_alpha"]["personality"]["id"] == "analytical"
    assert agents["agent_alpha"]["domain"]["id"] == "financial_advisor"
    assert {"agent_beta", "agent_gamma"} <= agents.keys()


async def test_users_only_see_their_own_conversations(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    _, alice = make_token()
    _, mallory = make_token()
    chat = await http.post(
        "/v1/chat", headers=bearer(alice), json={"agent": "agent_gamma", "message": "secret"}
    )
    conversation_id = chat.json()["conversation_id"]
    listed = await http.get("/v1/conversations", headers=bearer(alice))
    assert [c["id"] for c in listed.json()["conversations"]] == [conversation_id]
    assert listed.json()["conversations"][0]["title"] == "secret"
    assert (await http.get("/v1/conversations", headers=bearer(mallory))).json() == {
        "conversations": []
    }
    path = f"/v1/conversations/{conversation_id}"
    assert (await http.get(path, headers=bearer(mallory))).status_code == 404
    assert (await http.delete(path, headers=bearer(mallory))).status_code == 404
    assert (await http.delete(path, headers=bearer(alice))).status_code == 204
    assert (await http.get(path, headers=bearer(alice))).status_code == 404


async def test_usage_is_reported_by_day_agent_and_model(
    http: httpx.AsyncClient, fake: FakeLLM, make_token: TokenFactory
) -> None:
    _, token = make_token()
    for _ in range(2):
        fake.enqueue(Script(chunks=["ok"], prompt_tokens=100, completion_tokens=10))
        await http.post(
            "/v1/chat", headers=bearer(token), json={"agent": "agent_gamma", "message": "hi"}
        )
    [row] = (await http.get("/v1/usage", headers=bearer(token))).json()["usage"]
    assert row["agent_id"] == "agent_gamma"
    assert row["model"] == "openai:gpt-4o-mini"
    assert (row["calls"], row["prompt_tokens"], row["completion_tokens"]) == (2, 200, 20)
    assert row["cost_usd"] == pytest.approx(2 * (100 * 0.15 + 10 * 0.60) / 1e6)


async def test_rest_rate_limit_is_per_user(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    _, busy = make_token()
    statuses = [
        (await http.get("/v1/agents", headers=bearer(busy))).status_code for _ in range(125)
    ]
    assert statuses[:120] == [200] * 120
    assert statuses[-1] == 429
    limited = await http.get("/v1/agents", headers=bearer(busy))
    assert limited.json()["error"]["code"] == "rate_limited"
    assert (await http.get("/v1/agents", headers=bearer(make_token()[1]))).status_code == 200


async def test_admin_endpoints_need_the_admin_role(
    http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    _, user = make_token()
    _, admin = make_token(admin=True)
    forbidden = await http.get("/v1/admin/handoffs", headers=bearer(user))
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    assert (await http.get("/v1/admin/handoffs", headers=bearer(admin))).status_code == 200


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    ready = await http.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_bad_catalog_reload_is_rejected_and_the_old_one_stays(
    http: httpx.AsyncClient, make_token: TokenFactory, catalog_dir: Path
) -> None:
    _, admin = make_token(admin=True)
    before = (await http.get("/ready")).json()["catalog_version"]
    broken = catalog_dir / "personalities" / "broken.yaml"
    broken.write_text("id: broken\nname: [unclosed\n")
    try:
        refused = await http.post("/v1/admin/reload", headers=bearer(admin))
    finally:
        broken.unlink()
    assert refused.status_code == 400
    assert any("broken.yaml" in problem for problem in refused.json()["problems"])
    assert (await http.get("/ready")).json()["catalog_version"] == before
    agents = await http.get("/v1/agents", headers=bearer(admin))
    assert agents.status_code == 200
    reloaded = await http.post("/v1/admin/reload", headers=bearer(admin))
    assert reloaded.json()["version"] == before
