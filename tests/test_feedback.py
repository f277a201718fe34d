"""Feedback on replies over the WebSocket and REST: stored once per user and message,
replaceable, in the history, and never on someone else's message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from conftest import TokenFactory
from support.client import ChatClient
from support.fake_llm import FakeLLM
from support.operations import bearer
from support.server import ParleyServer


@pytest.fixture
async def http(server: ParleyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def test_feedback_over_the_websocket_is_kept_and_replaced(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    http: httpx.AsyncClient,
    db: asyncpg.Connection,
) -> None:
    _, token = make_token()
    async with await ChatClient.connect(server.ws_url, token) as client:
        session = await client.start(agent="agent_gamma")
        reply = await client.ask("Hello")
        assert reply.done is not None
        message_id = reply.done["message_id"]
        await client.send({"type": "feedback", "message_id": message_id, "rating": "down"})
        saved = await client.expect("feedback_saved")
        assert (saved["message_id"], saved["rating"], saved["comment"]) == (
            message_id,
            "down",
            None,
        )
        await client.send(
            {
                "type": "feedback",
                "message_id": message_id,
                "rating": "up",
                "comment": "  Solved it after all  ",
            }
        )
        changed = await client.expect("feedback_saved")
        assert (changed["rating"], changed["comment"]) == ("up", "Solved it after all")
    async with await ChatClient.connect(server.ws_url, token) as client:
        again = await client.start(conversation_id=session["conversation_id"])
    [answer] = [m for m in again["history"] if m["role"] == "assistant"]
    assert answer["feedback"] == {"rating": "up", "comment": "Solved it after all"}
    history = await http.get(
        f"/v1/conversations/{session['conversation_id']}", headers=bearer(token)
    )
    assert history.json()["messages"][-1]["feedback"]["rating"] == "up"
    rows = await db.fetch("SELECT * FROM feedback WHERE message_id = $1", uuid.UUID(message_id))
    assert [(row["rating"], row["agent_id"]) for row in rows] == [("up", "agent_gamma")]


async def test_feedback_over_rest_and_what_cannot_be_rated(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, http: httpx.AsyncClient
) -> None:
    _, token = make_token()
    _, stranger = make_token()
    async with await ChatClient.connect(server.ws_url, token) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("Hello")
        reply = await client.reply(accepted["reply_id"])
        assert reply.done is not None
        # Another user's message is "not found" on the socket too, naming the message.
        async with await ChatClient.connect(server.ws_url, stranger) as other:
            await other.send(
                {"type": "feedback", "message_id": reply.done["message_id"], "rating": "up"}
            )
            refused = await other.expect("error")
        assert (refused["code"], refused["message_id"]) == ("not_found", reply.done["message_id"])
    path = f"/v1/messages/{reply.done['message_id']}/feedback"
    given = await http.post(
        path, headers=bearer(token), json={"rating": "down", "comment": "Too vague"}
    )
    assert given.status_code == 200, given.text
    assert given.json()["feedback"]["comment"] == "Too vague"
    assert (
        await http.post(path, headers=bearer(stranger), json={"rating": "down"})
    ).status_code == 404
    for wrong in (accepted["message_id"], str(uuid.uuid4()), "not-a-uuid"):  # a user message...
        answer = await http.post(
            f"/v1/messages/{wrong}/feedback", headers=bearer(token), json={"rating": "up"}
        )
        assert answer.status_code == 404, answer.text
    bad = await http.post(path, headers=bearer(token), json={"rating": "meh"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "bad_request"
