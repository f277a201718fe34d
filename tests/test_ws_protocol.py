"""The WebSocket handshake and the frames that are not about a running reply."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from conftest import JWT_SECRET, TokenFactory
from support.client import ChatClient
from support.server import ParleyServer


async def closed_with(client: ChatClient) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_ping_gets_pong(server: ParleyServer, make_token: TokenFactory) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_start_with_agent_opens_a_session(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_alpha")
    assert session["agent"] == {
        "id": "agent_alpha",
        "name": "Alpha",
        "personality": "analytical",
        "rules": "financial_advisor",
        "max_message_chars": 8000,
    }
    assert session["history"] == []
    assert session["active_reply"] is None
    assert session["session_id"] and session["conversation_id"]


async def test_start_with_allowed_personality_and_rules_pair(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(personality="creative", rules="technical_support")
        assert session["agent"]["personality"] == "creative"
        assert session["agent"]["rules"] == "technical_support"
        await client.send(
            {"type": "start", "personality": "creative", "rules": "financial_advisor"}
        )
        error = await client.expect("error")
    assert error["code"] == "unknown_agent"


async def test_unknown_agent_is_refused(server: ParleyServer, make_token: TokenFactory) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.send({"type": "start", "agent": "agent_nobody"})
        error = await client.expect("error")
    assert error["code"] == "unknown_agent"


@pytest.mark.parametrize(
    ("raw", "message_part"),
    [
        ("not json", "JSON"),
        ("[1, 2]", "type"),
        ('{"type": "dance"}', "Unknown frame type"),
        ('{"type": "message", "text": "hi"}', "client_id"),
        ('{"type": "resume", "reply_id": "x", "after_seq": -1}', "after_seq"),
        ('{"type": "start"}', "exactly one"),
        ('{"type": "ping", "extra": 1}', "extra"),
    ],
)
async def test_bad_frames_get_bad_request_and_the_socket_stays_open(
    server: ParleyServer, make_token: TokenFactory, raw: str, message_part: str
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.connection.send(raw)
        error = await client.expect("error")
        assert error["code"] == "bad_request"
        assert message_part.lower() in error["message"].lower()
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_message_before_start_is_a_bad_request(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.send({"type": "message", "client_id": "c1", "text": "hello"})
        error = await client.expect("error")
    assert error == {
        "type": "error",
        "code": "bad_request",
        "message": 'Send a "start" frame first.',
        "client_id": "c1",
    }


async def test_too_long_message_is_refused_and_nothing_is_stored(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_gamma")
        await client.send({"type": "message", "client_id": "long", "text": "x" * 16_001})
        error = await client.expect("error")
        assert error["code"] == "too_large"
        await client.send({"type": "start", "conversation_id": session["conversation_id"]})
        assert (await client.expect("session"))["history"] == []


async def test_oversized_frame_closes_with_1009(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.connection.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        assert await closed_with(client) == 1009


async def test_frames_over_the_rate_limit_are_refused(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        for _ in range(40):
            await client.send({"type": "ping"})
        answers = [await client.receive() for _ in range(40)]
    limited = [a for a in answers if a["type"] == "error"]
    assert limited and all(a["code"] == "rate_limited" for a in limited)
    assert answers[0] == {"type": "pong"}


def _unsigned_token(user: str) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"sub": user, "exp": int(time.time()) + 600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        jwt.encode({"sub": "mallory", "exp": int(time.time()) - 120}, JWT_SECRET),
        jwt.encode({"sub": "mallory", "exp": int(time.time()) + 600}, "wrong-secret-" * 4),
        _unsigned_token("mallory"),
        jwt.encode({"sub": "mallory"}, JWT_SECRET),
    ],
    ids=["missing", "garbage", "expired", "wrong-signature", "alg-none", "no-exp"],
)
async def test_bad_tokens_close_with_1008_before_any_frame(
    server: ParleyServer, token: str | None
) -> None:
    client = await ChatClient.connect(server.ws_url, token)
    assert await closed_with(client) == 1008


async def test_token_in_the_url_is_not_accepted(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    token = make_token()[1]
    client = await ChatClient.connect(f"{server.ws_url}?token={token}", None)
    assert await closed_with(client) == 1008


async def test_foreign_origin_closes_with_1008(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    client = await ChatClient.connect(server.ws_url, make_token()[1], origin="https://evil.example")
    assert await closed_with(client) == 1008


async def test_same_origin_is_allowed(server: ParleyServer, make_token: TokenFactory) -> None:
    async with await ChatClient.connect(
        server.ws_url, make_token()[1], origin=server.url
    ) as client:
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_another_users_conversation_and_session_are_not_found(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as alice:
        session = await alice.start(agent="agent_gamma")
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as mallory:
        await mallory.send({"type": "start", "conversation_id": session["conversation_id"]})
        assert (await mallory.expect("error"))["code"] == "not_found"
        await mallory.send({"type": "start", "session_id": session["session_id"]})
        assert (await mallory.expect("error"))["code"] == "not_found"
        await mallory.send({"type": "start", "conversation_id": "not-a-uuid"})
        assert (await mallory.expect("error"))["code"] == "not_found"


async def test_session_id_reattaches_to_the_same_conversation(
    server: ParleyServer, server_b: ParleyServer, make_token: TokenFactory
) -> None:
    token = make_token()[1]
    async with await ChatClient.connect(server.ws_url, token) as first:
        session = await first.start(agent="agent_beta")
    async with await ChatClient.connect(server_b.ws_url, token) as second:
        again = await second.start(session_id=session["session_id"])
    assert again["conversation_id"] == session["conversation_id"]
    assert again["session_id"] == session["session_id"]
    assert again["agent"]["id"] == "agent_beta"
