"""A token offered as a WebSocket subprotocol, for clients that cannot set headers.

Browsers (a widget on another origin, where cookies are third-party) and
Node's WebSocket cannot send ``Authorization``; they offer ``parley.v1`` and
``parley.token.<jwt>`` instead (docs/protocol.md, "Connecting").
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from conftest import JWT_SECRET, TokenFactory
from support.server import ParleyServer


def offering(token: str) -> list[Subprotocol]:
    return [Subprotocol("parley.v1"), Subprotocol(f"parley.token.{token}")]


async def closed_with(connection: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await connection.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def tampered(token: str) -> str:
    """The token with another ``sub`` and the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_a_token_subprotocol_authenticates_and_parley_v1_is_selected(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    token = make_token()[1]
    async with connect(server.ws_url, subprotocols=offering(token)) as connection:
        assert connection.subprotocol == "parley.v1"
        assert connection.response is not None
        assert connection.response.headers["Sec-WebSocket-Protocol"] == "parley.v1"
        await connection.send(json.dumps({"type": "start", "agent": "agent_gamma"}))
        session = json.loads(await connection.recv())
        assert session["type"] == "session", session
    assert token not in server.log()


async def test_a_token_subprotocol_works_from_an_allowed_origin(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with connect(
        server.ws_url, subprotocols=offering(make_token()[1]), origin=server.url
    ) as connection:
        await connection.send(json.dumps({"type": "ping"}))
        assert json.loads(await connection.recv()) == {"type": "pong"}


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"sub": "mallory", "exp": int(time.time()) - 120}, JWT_SECRET),
        tampered(jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, JWT_SECRET)),
        jwt.encode({"sub": "mallory", "exp": int(time.time()) + 600}, "wrong-secret-" * 4),
        "not-a-jwt",
        "",
    ],
    ids=["expired", "tampered", "wrong-signature", "garbage", "empty"],
)
async def test_a_bad_token_subprotocol_closes_with_1008(server: ParleyServer, token: str) -> None:
    async with connect(server.ws_url, subprotocols=offering(token)) as connection:
        # parley.v1 is selected even so: a browser then sees the 1008, not a failed handshake.
        assert connection.subprotocol == "parley.v1"
        assert await closed_with(connection) == 1008


async def test_parley_v1_alone_is_no_credential(server: ParleyServer) -> None:
    async with connect(server.ws_url, subprotocols=[Subprotocol("parley.v1")]) as connection:
        assert await closed_with(connection) == 1008


async def test_a_token_subprotocol_from_a_foreign_origin_closes_with_1008(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with connect(
        server.ws_url, subprotocols=offering(make_token()[1]), origin="https://evil.example"
    ) as connection:
        assert await closed_with(connection) == 1008
