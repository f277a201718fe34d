"""Signing in: the session cookie's requests and answers, dev sign-in, guest tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parley.transport.bodies.base import Closed


class SessionRequest(Closed):
    """``POST /auth/session``: the token, unless it comes in the Authorization header."""

    token: str | None = Field(default=None, min_length=1)


class DevLoginRequest(Closed):
    name: str = Field(min_length=1, max_length=64, description="Any display name.")


class User(Closed):
    id: str
    name: str
    admin: bool


class Session(Closed):
    user: User


class SessionState(Closed):
    """``GET /auth/session``: whether this browser is signed in (never a 401)."""

    signed_in: bool
    user: User | None


class GuestToken(Closed):
    """``POST /v1/guest``: a token that opens a chat with one agent, and the guest's id."""

    token: str = Field(description="A JWT for the chat WebSocket (subprotocol or Authorization).")
    token_type: Literal["Bearer"]
    expires_at: int = Field(description="When the token expires (Unix seconds).")
    expires_in: int = Field(description="Seconds from now until it expires.")
    guest_id: str = Field(
        description="The signed guest id: send it again for a fresh token as the same guest."
    )
    agent: str = Field(description="The one agent the token may chat with.")
