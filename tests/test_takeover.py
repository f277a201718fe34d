"""Human takeover end to end, against real servers: the queue, taking over (the
agent pauses), operator replies through the reply log, and handing back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from conftest import REDIS_PREFIX, TokenFactory
from support.client import ChatClient, start_and_ask
from support.fake_llm import FakeLLM, Script
from support.operations import Operator, bearer, event_stream, frames_until, of_type
from support.server import ParleyServer
from support.storage import StorageURLs


@pytest.fixture
async def http(server: ParleyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def operator(http: httpx.AsyncClient, make_token: TokenFactory) -> Operator:
    return Operator(http, make_token(f"op-{uuid.uuid4().hex[:8]}", admin=True, name="Dana")[1])


async def test_an_escalation_puts_the_conversation_in_the_queue(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, operator: Operator
) -> None:
    fake.enqueue(Script(chunks=["Let us secure your account."]))
    user_id, token = make_token()
    async with await ChatClient.connect(server.ws_url, token) as client:
        session = await client.start(agent="agent_gamma")
        assert session["handoff"] == {"state": "none"}
        accepted = await client.say("I think my account was hacked")
        reply = await client.reply(accepted["reply_id"])
        assert [n["action"] for n in reply.notices] == ["handoff"]
        waiting = await client.expect("handoff")
    conversation_id = session["conversation_id"]
    assert waiting == {"type": "handoff", "conversation_id": conversation_id, "state": "waiting"}
    [queued] = [item for item in await operator.queue() if item["id"] == conversation_id]
    assert queued["handoff"] == {"state": "waiting"}
    assert (queued["trigger"], queued["rule"], queued["reason"]) == (
        "rule",
        "security_incident",
        "possible security incident",
    )
    assert queued["owner"]["id"] == user_id
    assert queued["last_user_message"] == "I think my account was hacked"


async def test_takeover_pauses_the_agent_and_the_operator_reaches_the_user(
    server: ParleyServer,
    server_b: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    operator: Operator,
    storage: StorageURLs,
    db: asyncpg.Connection,
) -> None:
    fake.enqueue(Script(chunks=["First answer."]), Script(chunks=["Back to you, from the model."]))
    user_id, token = make_token()
    redis = Redis.from_url(storage.redis_url)
    async with await ChatClient.connect(server.ws_url, token) as client:
        session = await client.start(agent="agent_budget")  # a domain with a daily budget
        conversation_id = session["conversation_id"]
        await client.ask("Hello")
        budget_key = f"{REDIS_PREFIX}:budget:tight_budget:{await _today(db)}:{user_id}"
        spent = int(await redis.get(budget_key) or 0)
        assert spent > 0

        taken = await operator.take(conversation_id)
        assert taken["handoff"] == {"state": "taken", "by": {"kind": "operator", "name": "Dana"}}
        joined = await client.expect("handoff")
        assert (joined["state"], joined["by"]) == ("taken", {"kind": "operator", "name": "Dana"})

        async with event_stream(server.url, operator.token) as events:
            held = await client.say("Is anyone there?")
            assert held["reply_id"] is None
            seen = await events.next(
                lambda kind, e: kind == "message" and e["conversation_id"] == conversation_id
            )
        assert seen == {
            "kind": "message",
            "conversation_id": conversation_id,
            "message_id": held["message_id"],
        }
        assert int(await redis.get(budget_key) or 0) == spent  # nothing reserved
        transcript = await operator.transcript(conversation_id)
        assert transcript["messages"][-1]["content"] == "Is anyone there?"
        assert transcript["conversation"]["owner"]["id"] == user_id

        posted = await operator.say(conversation_id, "Hi, I am Dana from support.")
        frames = await frames_until(client, of_type("done", reply_id=posted["reply_id"]))
    [delta] = [f for f in frames if f["type"] == "delta"]
    assert delta["text"] == "Hi, I am Dana from support."
    assert delta["seq"] == 1
    assert delta["author"] == {"kind": "operator", "name": "Dana"}
    assert frames[-1]["status"] == "complete"
    assert frames[-1]["author"] == {"kind": "operator", "name": "Dana"}
    assert frames[-1]["message_id"] == posted["message_id"]
    assert len(fake.requests) == 1  # the held message made no upstream request

    # Another instance: the history, the state, and the operator's reply to resume.
    async with await ChatClient.connect(server_b.ws_url, token) as client_b:
        again = await client_b.start(conversation_id=conversation_id)
        assert again["handoff"]["state"] == "taken"
        assert [m["content"] for m in again["history"][-2:]] == [
            "Is anyone there?",
            "Hi, I am Dana from support.",
        ]
        assert again["history"][-1]["author"] == {"kind": "operator", "name": "Dana"}
        await client_b.send({"type": "resume", "reply_id": posted["reply_id"], "after_seq": 0})
        resumed = await client_b.reply(posted["reply_id"])
    assert resumed.text == "Hi, I am Dana from support."
    assert resumed.done is not None and resumed.done["author"]["name"] == "Dana"

    async with httpx.AsyncClient(base_url=server_b.url) as http_b:
        history = (
            await http_b.get(f"/v1/conversations/{conversation_id}", headers=bearer(token))
        ).json()
    assert history["messages"][-1]["author"] == {"kind": "operator", "name": "Dana"}
    assert history["conversation"]["handoff_state"] == "taken"

    # Handing back: the next message gets a model reply, which read what the person said.
    async with await ChatClient.connect(server.ws_url, token) as client:
        await client.start(conversation_id=conversation_id)
        released = await operator.release(conversation_id)
        assert released["handoff"] == {"state": "none"}
        back = await client.expect("handoff")
        assert (back["state"], back["by"]["name"]) == ("released", "Dana")
        reply = await client.ask("Thanks, one more question")
    assert reply.text == "Back to you, from the model."
    sent = [(m["role"], m["content"]) for m in fake.requests[-1].body["messages"][1:]]
    assert sent[-3:] == [
        ("user", "Is anyone there?"),
        ("assistant", "Hi, I am Dana from support."),
        ("user", "Thanks, one more question"),
    ]
    [spell] = await db.fetch(
        "SELECT * FROM takeovers WHERE conversation_id = $1", uuid.UUID(conversation_id)
    )
    assert spell["operator_name"] == "Dana"
    assert spell["released_by"] == spell["operator_id"] and spell["released_at"] is not None
    stored = await db.fetchrow(
        "SELECT * FROM messages WHERE id = $1", uuid.UUID(posted["message_id"])
    )
    assert (stored["author_kind"], stored["author_id"]) == ("operator", spell["operator_id"])
    await redis.aclose()


async def test_taking_over_stops_the_running_reply(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, operator: Operator
) -> None:
    fake.enqueue(Script(chunks=["Thinking"], hold=True))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_gamma")
        accepted = await client.say("Take your time")
        await client.reply(accepted["reply_id"], until_seq=1)
        fake.wait_for_held(1)
        await operator.take(session["conversation_id"])
        frames = await frames_until(client, of_type("done"))
    assert frames[-1]["status"] == "cancelled"
    assert any(f["type"] == "handoff" and f["state"] == "taken" for f in frames)


async def test_the_user_can_ask_for_a_person(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    operator: Operator,
    http: httpx.AsyncClient,
) -> None:
    _, token = make_token()
    async with await ChatClient.connect(server.ws_url, token) as client:
        session = await client.start(agent="agent_gamma")
        await client.ask("Hello")
        await client.send({"type": "request_human", "reason": "I prefer a person"})
        frames = await frames_until(client, of_type("handoff"))
    assert frames[-1]["state"] == "waiting"
    conversation_id = session["conversation_id"]
    [queued] = [item for item in await operator.queue() if item["id"] == conversation_id]
    assert (queued["trigger"], queued["reason"]) == ("user", "I prefer a person")
    # Asking again changes nothing; REST says the same.
    again = await http.post(f"/v1/conversations/{conversation_id}/handoff", headers=bearer(token))
    assert again.json()["handoff"] == {"state": "waiting"}
    # Handing back without taking over dismisses the request.
    assert (await operator.release(conversation_id))["handoff"] == {"state": "none"}
    assert conversation_id not in [item["id"] for item in await operator.queue()]


async def test_operators_act_only_through_admin_endpoints(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    operator: Operator,
    http: httpx.AsyncClient,
) -> None:
    _, token = make_token()
    _, stranger = make_token()
    _, other_admin = make_token(admin=True, name="Sam")
    session, reply = await start_and_ask(server.ws_url, token, "agent_gamma", "Hello")
    conversation_id = session["conversation_id"]
    admin_paths = [
        ("GET", "/v1/admin/queue"),
        ("GET", f"/v1/admin/conversations/{conversation_id}"),
        ("POST", f"/v1/admin/conversations/{conversation_id}/takeover"),
        ("POST", f"/v1/admin/conversations/{conversation_id}/release"),
        ("GET", "/v1/admin/conversations"),
        ("GET", "/v1/admin/webhooks/deliveries"),
    ]
    for method, path in admin_paths:
        refused = await http.request(method, path, headers=bearer(token))
        assert refused.status_code == 403, (path, refused.text)
    # An admin is a user like any other on the user-facing endpoints.
    assert reply.done is not None
    for method, path, body in [
        ("GET", f"/v1/conversations/{conversation_id}", None),
        ("POST", f"/v1/conversations/{conversation_id}/handoff", None),
        ("PATCH", f"/v1/conversations/{conversation_id}", {"title": "Mine now"}),
        ("POST", f"/v1/messages/{reply.done['message_id']}/feedback", {"rating": "down"}),
    ]:
        for who in (stranger, operator.token):
            answer = await http.request(method, path, headers=bearer(who), json=body)
            assert answer.status_code == 404, (path, answer.text)

    # Writing needs holding the conversation, and one operator holds it at a time.
    not_held = await http.post(
        f"/v1/admin/conversations/{conversation_id}/messages",
        headers=operator.headers,
        json={"text": "Hello?"},
    )
    assert not_held.status_code == 422
    await operator.take(conversation_id)
    assert (await operator.take(conversation_id))["handoff"]["by"]["name"] == "Dana"  # idempotent
    second = await http.post(
        f"/v1/admin/conversations/{conversation_id}/takeover", headers=bearer(other_admin)
    )
    assert second.status_code == 422
    assert "Dana" in second.json()["error"]["message"]
    await operator.release(conversation_id)


async def test_operator_messages_are_idempotent_and_rest_chat_is_held(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    operator: Operator,
    http: httpx.AsyncClient,
) -> None:
    _, token = make_token()
    session, _ = await start_and_ask(server.ws_url, token, "agent_gamma", "Hello")
    conversation_id = session["conversation_id"]
    await operator.take(conversation_id)
    first = await operator.say(conversation_id, "One moment.", client_id="op-1")
    again = await operator.say(conversation_id, "One moment.", client_id="op-1")
    assert again == first
    held = await http.post(
        "/v1/chat",
        headers=bearer(token),
        json={"conversation_id": conversation_id, "message": "Still there?"},
    )
    assert held.status_code == 200, held.text
    body = held.json()
    assert (body["reply_id"], body["reply"]) == (None, None)
    assert body["handoff"]["state"] == "taken"
    streamed = await http.post(
        "/v1/chat",
        headers=bearer(token),
        json={"conversation_id": conversation_id, "message": "Hello?", "stream": True},
    )
    assert streamed.text.startswith("event: accepted\n")
    assert '"reply_id":null' in streamed.text
    assert len(fake.requests) == 1
    history = (await http.get(f"/v1/conversations/{conversation_id}", headers=bearer(token))).json()
    contents = [m["content"] for m in history["messages"]]
    assert contents.count("One moment.") == 1
    assert contents[-2:] == ["Still there?", "Hello?"]
    await operator.release(conversation_id)


async def _today(db: asyncpg.Connection) -> str:
    day = await db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    return str(day.isoformat())
