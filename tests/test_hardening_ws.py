"""The WebSocket against hostile or careless clients: expiring tokens, bad text, floods.

Every test drives a real server over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import JWT_SECRET, TokenFactory
from parley.auth.tokens import CLOCK_SKEW_SECONDS
from support.client import ChatClient, ask_once
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer

# Long enough to connect and exchange a few frames, short enough to wait for.
SHORT_LIFE_SECONDS = 3.0
EXPIRY_WAIT_SECONDS = SHORT_LIFE_SECONDS + 5


def expiring_token(user: str, seconds: float) -> str:
    """A token the server accepts for about ``seconds`` more.

    The server accepts tokens ``CLOCK_SKEW_SECONDS`` past their ``exp``, and
    so lives a socket: an ``exp`` in the recent past keeps the wait short.
    """
    expires = int(time.time() + seconds - CLOCK_SKEW_SECONDS)
    return jwt.encode({"sub": user, "exp": expires}, JWT_SECRET, algorithm="HS256")


async def expect_expiry_close(client: ChatClient) -> None:
    """An ``unauthorized`` error frame, then a 1008 close saying why."""
    frame = json.loads(await asyncio.wait_for(client.connection.recv(), EXPIRY_WAIT_SECONDS))
    assert (frame["type"], frame["code"]) == ("error", "unauthorized"), frame
    assert "expired" in frame["message"]
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(client.connection.recv(), EXPIRY_WAIT_SECONDS)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "token expired")


async def test_socket_closes_when_its_token_expires(server: ParleyServer) -> None:
    client = await ChatClient.connect(server.ws_url, expiring_token("expiring", SHORT_LIFE_SECONDS))
    await client.send({"type": "ping"})
    assert await client.receive() == {"type": "pong"}
    await expect_expiry_close(client)


async def test_cookie_socket_closes_when_the_cookie_token_expires(server: ParleyServer) -> None:
    token = expiring_token("cookie-user", SHORT_LIFE_SECONDS)
    connection = await connect(
        server.ws_url, additional_headers={"Cookie": f"parley_session={token}"}, origin=server.url
    )
    client = ChatClient(connection)
    await client.send({"type": "ping"})
    assert await client.receive() == {"type": "pong"}
    await expect_expiry_close(client)


async def test_auth_frame_with_a_fresh_token_keeps_the_socket_open(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    user = "renewing-user"
    old = expiring_token(user, SHORT_LIFE_SECONDS)
    async with await ChatClient.connect(server.ws_url, old) as client:
        _, fresh = make_token(user, ttl_seconds=3600)
        await client.send({"type": "auth", "token": fresh})
        answer = await client.expect("authenticated")
        assert answer["expires_at"] == jwt.decode(fresh, options={"verify_signature": False})["exp"]
        # A witness with a token that ends a second after the old one: once
        # it has been closed, the old token's time is over.
        witness = await ChatClient.connect(
            server.ws_url, expiring_token(user, SHORT_LIFE_SECONDS + 1)
        )
        await expect_expiry_close(witness)
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_auth_frame_for_another_user_is_forbidden_and_changes_nothing(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    client = await ChatClient.connect(server.ws_url, expiring_token("alice", SHORT_LIFE_SECONDS))
    _, mallory = make_token("mallory", ttl_seconds=3600)
    await client.send({"type": "auth", "token": mallory})
    assert (await client.expect("error"))["code"] == "forbidden"
    await expect_expiry_close(client)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        jwt.encode({"sub": "bob", "exp": int(time.time()) - 3600}, JWT_SECRET),
        jwt.encode({"sub": "bob", "exp": int(time.time()) + 600}, "wrong-secret-" * 4),
    ],
    ids=["garbage", "expired", "wrong-signature"],
)
async def test_bad_auth_frame_is_unauthorized_and_the_socket_stays_open(
    server: ParleyServer, make_token: TokenFactory, token: str
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token("bob")[1]) as client:
        await client.send({"type": "auth", "token": token})
        assert (await client.expect("error"))["code"] == "unauthorized"
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "client_id": "c-1", "text": "before\x00after"},
        {"type": "message", "client_id": "c-1", "text": "ring the \x07 bell"},
        {"type": "message", "client_id": "c-\x00", "text": "hello"},
        {"type": "message", "client_id": "c-\x1b[31m", "text": "hello"},
        {"type": "message", "client_id": "c-1", "text": "half a pair: \ud83d"},
    ],
    ids=["nul-text", "bell-text", "nul-client-id", "escape-client-id", "lone-surrogate"],
)
async def test_unstorable_text_is_a_bad_request_and_nothing_is_stored(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, frame: dict[str, str]
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_gamma")
        # json.dumps writes the lone surrogate as the escape "\ud83d", which is valid JSON.
        await client.connection.send(json.dumps(frame))
        error = await client.expect("error")
        assert error["code"] == "bad_request", error
        await client.send({"type": "start", "conversation_id": session["conversation_id"]})
        assert (await client.expect("session"))["history"] == []
    assert fake.requests == []


async def test_tabs_and_newlines_are_ordinary_text(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    reply = await ask_once(server.ws_url, make_token()[1], "agent_gamma", "line one\r\n\tline two")
    assert reply.done is not None and reply.done["status"] == "complete"


@pytest.mark.parametrize(
    "raw",
    ["[" * 30_000 + "]" * 30_000, '{"type": "ping", "x": ' + "[" * 30_000 + "]" * 30_000 + "}"],
    ids=["bare", "in-a-field"],
)
async def test_deeply_nested_frame_is_a_bad_request(
    server: ParleyServer, make_token: TokenFactory, raw: str
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.connection.send(raw)
        error = await client.expect("error")
        assert error["code"] == "bad_request", error
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_binary_frames_count_against_the_frame_rate_limit(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        for _ in range(40):
            await client.connection.send(b"\x00" * 16)
        answers = [await client.receive() for _ in range(40)]
        codes = [answer["code"] for answer in answers]
        assert codes[0] == "bad_request"
        assert "rate_limited" in codes
        # The binary flood spent the burst: text frames are limited too.
        await client.send({"type": "ping"})
        assert (await client.expect("error"))["code"] == "rate_limited"


async def test_cancel_of_a_finished_reply_is_answered_with_its_done(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        reply = await client.ask("hello")
        assert reply.done is not None
        await client.send({"type": "cancel", "reply_id": reply.reply_id})
        assert await client.expect("done") == reply.done
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_cancel_from_a_socket_not_following_the_reply_gets_its_done(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    token = make_token()[1]
    fake.enqueue(Script(chunks=["Looking into it. "], hold=True))
    async with await ChatClient.connect(server.ws_url, token) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("help")
        await client.reply(accepted["reply_id"], until_seq=1)
        async with await ChatClient.connect(server.ws_url, token) as other:
            await other.send({"type": "cancel", "reply_id": accepted["reply_id"]})
            done = await other.expect("done")
            assert (done["reply_id"], done["status"]) == (accepted["reply_id"], "cancelled")
        rest = await client.reply(accepted["reply_id"])
    assert rest.done == done
