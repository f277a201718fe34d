"""Server frames as types: what ``parley.protocol`` promises clients, on a real server."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from conftest import TokenFactory
from parley.protocol import (
    AcceptedFrame,
    DoneFrame,
    ErrorFrame,
    PongFrame,
    ReplyStatus,
    SessionFrame,
    parse_frame,
)
from support.client import ChatClient
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer

SECRET = "my card is 4111 1111 1111 1111 and mail ada@example.com"


async def test_every_frame_of_a_reply_parses_to_its_type_and_back_unchanged(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Index", " funds", " track", " an index."]))
    seen = []
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        seen.append(await client.start(agent="agent_gamma"))
        seen.append(await client.say("What is an index fund?"))
        reply = await client.reply(seen[-1]["reply_id"])
        await client.send({"type": "ping"})
        seen.append(await client.receive())
    assert reply.done is not None
    seen += [*reply.numbered, *reply.notices, reply.done]
    for frame in seen:
        assert parse_frame(frame).to_dict() == frame
    kinds = [type(parse_frame(frame)) for frame in (seen[0], seen[1], seen[2], reply.done)]
    assert kinds == [SessionFrame, AcceptedFrame, PongFrame, DoneFrame]
    assert parse_frame(reply.done) == DoneFrame(
        reply_id=reply.reply_id,
        message_id=reply.done["message_id"],
        status=ReplyStatus.COMPLETE,
        usage=reply.done["usage"],
    )


def test_a_frame_from_a_newer_server_still_parses() -> None:
    frame = parse_frame({"type": "pong", "added_later": 1})
    assert frame == PongFrame()
    with pytest.raises(ValueError, match="unknown server frame type"):
        parse_frame({"type": "teleport"})
    with pytest.raises(ValueError, match="malformed done frame"):
        parse_frame({"type": "done", "reply_id": "r"})


async def test_accepted_shows_the_message_as_stored(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_alpha")
        accepted = await client.say(SECRET, client_id="secret")
        await client.reply(accepted["reply_id"])
        again = await client.say(SECRET, client_id="secret")  # a resend: the first acceptance
        await client.reply(again["reply_id"])  # replayed to the resending socket
        plain = await client.say("What is an index fund?")
        await client.reply(plain["reply_id"])
    stored = await db.fetchval(
        "SELECT content FROM messages WHERE id = $1", uuid.UUID(accepted["message_id"])
    )
    assert accepted["text"] == stored
    assert "4111" not in accepted["text"] and "ada@example.com" not in accepted["text"]
    assert accepted["redacted"] is True
    assert again == accepted
    assert (plain["text"], plain["redacted"]) == ("What is an index fund?", False)


async def test_session_tells_the_agents_message_limit_and_a_longer_message_is_refused(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_alpha")
        limit = session["agent"]["max_message_chars"]
        await client.send({"type": "message", "client_id": "long", "text": "x" * (limit + 1)})
        refused = await client.expect("error")
        await client.send({"type": "start", "conversation_id": session["conversation_id"]})
        history = (await client.expect("session"))["history"]
    assert limit == 8000  # the rule set's max_length, below PARLEY_MAX_MESSAGE_CHARS (16,000)
    assert (refused["code"], refused["client_id"]) == ("too_large", "long")
    assert str(limit) in refused["message"]
    assert history == [] and fake.requests == []


@pytest.mark.parametrize(
    ("frame", "names"),
    [
        ({"type": "start", "agent": "agent_nobody"}, {"request": "start"}),
        ({"type": "cancel", "reply_id": "r-none"}, {"reply_id": "r-none", "request": "cancel"}),
        ({"type": "resume", "reply_id": "r-none"}, {"reply_id": "r-none", "request": "resume"}),
        (
            {"type": "confirm", "reply_id": "r-none", "call_id": "c1", "approve": True},
            {"reply_id": "r-none", "call_id": "c1"},
        ),
        ({"type": "auth", "token": "not-a-token"}, {"request": "auth"}),
        ({"type": "request_human"}, {"request": "request_human"}),
    ],
)
async def test_every_error_names_the_request_it_answers(
    server: ParleyServer, make_token: TokenFactory, frame: dict[str, object], names: dict[str, str]
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.send(frame)
        error = parse_frame(await client.expect("error"))
    assert isinstance(error, ErrorFrame)
    named = {key: getattr(error, key) for key in ("reply_id", "client_id", "call_id", "request")}
    assert {key: value for key, value in named.items() if value is not None} == names


async def test_an_unreadable_frame_gets_an_error_naming_nothing(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.connection.send("not json")
        error = await client.expect("error")
    assert error == {"type": "error", "code": "bad_request", "message": error["message"]}
