"""Admin review: conversations by agent, status, feedback and rule action; any
transcript; the JSONL export."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import TokenFactory
from support.client import start_and_ask
from support.fake_llm import FakeLLM, Script
from support.operations import bearer
from support.server import ParleyServer


@pytest.fixture
async def admin(server: ParleyServer, make_token: TokenFactory) -> AsyncIterator[httpx.AsyncClient]:
    headers = bearer(make_token(admin=True)[1])
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


async def converse(server: ParleyServer, token: str, agent: str, text: str) -> tuple[str, str]:
    """A conversation with one exchange; returns its id and the reply's message id."""
    session, reply = await start_and_ask(server.ws_url, token, agent, text)
    assert reply.done is not None
    return session["conversation_id"], reply.done["message_id"]


async def listed(admin: httpx.AsyncClient, **filters: str) -> list[str]:
    response = await admin.get("/v1/admin/conversations", params=filters)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["conversations"]]


async def test_filters_pages_transcripts_and_export(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, admin: httpx.AsyncClient
) -> None:
    fake.enqueue(Script(chunks=["Securing it."]), Script(chunks=["Index funds..."]))
    user_id, token = make_token()
    escalated, _ = await converse(server, token, "agent_gamma", "My account was hacked")
    disliked, disliked_reply = await converse(server, token, "agent_alpha", "What is a bond?")
    liked, liked_reply = await converse(server, token, "agent_beta", "A tagline please")
    async with httpx.AsyncClient(base_url=server.url, headers=bearer(token)) as http:
        for message_id, rating in ((disliked_reply, "down"), (liked_reply, "up")):
            rated = await http.post(f"/v1/messages/{message_id}/feedback", json={"rating": rating})
            assert rated.status_code == 200

    mine = {escalated, disliked, liked}

    async def only_mine(**filters: str) -> set[str]:
        return set(await listed(admin, user=user_id, **filters)) & mine

    assert await only_mine() == mine
    assert await only_mine(agent="agent_alpha") == {disliked}
    assert await only_mine(status="needs_human") == {escalated}
    assert await only_mine(status="normal") == {disliked, liked}
    assert await only_mine(status="taken") == set()
    assert await only_mine(feedback="down") == {disliked}
    assert await only_mine(feedback="none") == {escalated}
    assert await only_mine(action="handoff") == {escalated}
    assert await only_mine(agent="agent_beta", feedback="up") == {liked}

    first = (
        await admin.get("/v1/admin/conversations", params={"user": user_id, "limit": 2})
    ).json()
    assert len(first["conversations"]) == 2 and first["next_before"]
    rest = await admin.get(
        "/v1/admin/conversations",
        params={"user": user_id, "limit": 2, "before": first["next_before"]},
    )
    pages = [c["id"] for c in first["conversations"]] + [
        c["id"] for c in rest.json()["conversations"]
    ]
    assert sorted(pages) == sorted(mine) and rest.json()["next_before"] is None
    [row] = [
        c for c in first["conversations"] + rest.json()["conversations"] if c["id"] == disliked
    ]
    assert row["feedback"] == {"up": 0, "down": 1}
    assert row["owner"]["id"] == user_id

    transcript = (await admin.get(f"/v1/admin/conversations/{escalated}")).json()
    assert [m["role"] for m in transcript["messages"]] == ["user", "assistant"]
    assert transcript["messages"][1]["notices"][0]["action"] == "handoff"
    [handoff] = transcript["handoffs"]
    assert (handoff["trigger"], handoff["rule"], handoff["resolved_at"]) == (
        "rule",
        "security_incident",
        None,
    )
    assert transcript["conversation"]["handoff"] == {"state": "waiting"}

    async with admin.stream(
        "GET", "/v1/admin/export.jsonl", params={"user": user_id, "feedback": "any"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in response.aiter_lines() if line]
    exported: dict[str, Any] = {line["conversation"]["id"]: line for line in lines}
    assert set(exported) == {disliked, liked}
    assert exported[disliked]["messages"][1]["feedback"] == {"rating": "down", "comment": None}


async def test_bad_filters_are_refused(admin: httpx.AsyncClient) -> None:
    for params in (
        {"status": "sleepy"},
        {"feedback": "meh"},
        {"action": "DROP TABLE"},
        {"before": "yesterday"},
        {"limit": "0"},
    ):
        response = await admin.get("/v1/admin/conversations", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "bad_request"
    assert (await admin.get("/v1/admin/conversations/not-a-uuid")).status_code == 404
