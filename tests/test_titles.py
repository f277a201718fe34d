"""Conversation titles: written by the agent's model after the first reply (rules
applied, usage recorded), kept provisional on failure, and renamable by the user."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from conftest import TokenFactory
from parley.titles import PROMPT, clean_title
from support.client import ChatClient, start_and_ask
from support.fake_llm import FakeLLM, Script
from support.operations import bearer
from support.server import ParleyServer


@pytest.fixture(scope="module")
def titling(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    with ParleyServer({**server_env, "PARLEY_GENERATE_TITLES": "true"}, name="titles") as instance:
        yield instance


@pytest.fixture
async def http(titling: ParleyServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=titling.url, timeout=30) as client:
        yield client


async def title_usage(db: asyncpg.Connection, conversation_id: str) -> list[asyncpg.Record]:
    """The title's usage rows, once stored (just after the title request ends)."""
    deadline = time.monotonic() + 20
    while True:
        rows = await db.fetch(
            "SELECT * FROM llm_usage WHERE conversation_id = $1 AND purpose = 'title'",
            uuid.UUID(conversation_id),
        )
        if rows or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)  # polling a stored state, not synchronising with it


def test_titles_are_one_plain_line() -> None:
    assert clean_title('Title: "**Printer** on [fire](http://x)!"\nmore') == "Printer on fire"
    assert clean_title("# Resetting a *router*.") == "Resetting a router"
    assert clean_title("\n\n") == ""
    assert len(clean_title("word " * 40)) == 80


async def test_the_first_reply_titles_the_conversation(
    titling: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(
        Script(chunks=["Unplug it at once."]),
        Script(chunks=["**Printer**", " on fire!"], prompt_tokens=57, completion_tokens=4),
    )
    async with await ChatClient.connect(titling.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_gamma")
        await client.ask("My printer is on fire, what now")
        titled = await client.expect("title")
    conversation_id = session["conversation_id"]
    assert titled == {
        "type": "title",
        "conversation_id": conversation_id,
        "title": "Printer on fire",
    }
    request = fake.requests[1].body
    assert request["messages"][0] == {"role": "system", "content": PROMPT}
    assert "My printer is on fire" in request["messages"][1]["content"]
    assert "Unplug it at once." in request["messages"][1]["content"]
    assert "tools" not in request
    [usage] = await title_usage(db, conversation_id)
    assert (usage["message_id"], usage["prompt_tokens"], usage["completion_tokens"]) == (
        None,
        57,
        4,
    )
    assert usage["status"] == "complete" and usage["agent_id"] == "agent_gamma"
    row = await db.fetchrow(
        "SELECT title, title_source FROM conversations WHERE id = $1", uuid.UUID(conversation_id)
    )
    assert (row["title"], row["title_source"]) == ("Printer on fire", "generated")


async def test_a_title_passes_the_agents_rules(
    titling: ParleyServer, fake: FakeLLM, make_token: TokenFactory, http: httpx.AsyncClient
) -> None:
    fake.enqueue(
        Script(chunks=["Rotate it now."]),
        Script(chunks=["Leaked key sk-live_abcdefghijklmnopqrstuvwx"]),
    )
    _, token = make_token()
    async with await ChatClient.connect(titling.ws_url, token) as client:
        session = await client.start(agent="agent_gamma")
        await client.ask("I pasted my API key somewhere public")
        titled = await client.expect("title")
    assert "sk-live" not in titled["title"]
    assert titled["title"] == "Leaked key redacted API key"
    listed = await http.get("/v1/conversations", headers=bearer(token))
    [conversation] = [
        c for c in listed.json()["conversations"] if c["id"] == session["conversation_id"]
    ]
    assert conversation["title"] == titled["title"]


async def test_a_failed_title_keeps_the_provisional_one(
    titling: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=["Sure."]), Script(status=400))
    session, _ = await start_and_ask(
        titling.ws_url, make_token()[1], "agent_gamma", "Why is my screen flickering so much lately"
    )
    [usage] = await title_usage(db, session["conversation_id"])
    assert usage["status"] == "failed"
    row = await db.fetchrow(
        "SELECT title, title_source FROM conversations WHERE id = $1",
        uuid.UUID(session["conversation_id"]),
    )
    assert (row["title"], row["title_source"]) == (
        "Why is my screen flickering so much lately",
        "provisional",
    )


async def test_a_users_title_is_never_overwritten(
    titling: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    http: httpx.AsyncClient,
    db: asyncpg.Connection,
) -> None:
    fake.enqueue(Script(chunks=["Working on it"], hold=True), Script(chunks=["Generated title"]))
    _, token = make_token()
    async with await ChatClient.connect(titling.ws_url, token) as client:
        session = await client.start(agent="agent_gamma")
        accepted = await client.say("Help with my router")
        fake.wait_for_held(1)
        conversation_id = session["conversation_id"]
        renamed = await http.patch(
            f"/v1/conversations/{conversation_id}",
            headers=bearer(token),
            json={"title": "  My   router\tsaga "},
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["conversation"]["title"] == "My router saga"
        fake.release()
        await client.reply(accepted["reply_id"])
    assert await title_usage(db, conversation_id)  # the model was asked...
    listed = await http.get("/v1/conversations", headers=bearer(token))
    [conversation] = [c for c in listed.json()["conversations"] if c["id"] == conversation_id]
    assert conversation["title"] == "My router saga"  # ...and the user's title stayed
    for bad in ({"title": "   "}, {"title": "x" * 81}, {"title": "a\u0000b"}, {"name": "x"}):
        refused = await http.patch(
            f"/v1/conversations/{conversation_id}", headers=bearer(token), json=bad
        )
        assert refused.status_code == 400, bad
