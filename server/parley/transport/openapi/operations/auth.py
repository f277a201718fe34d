"""Signing in: the browser's session cookie, the current user, dev sign-in, guest tokens."""

from __future__ import annotations

from functools import partial

from parley.transport.bodies.auth import (
    DevLoginRequest,
    GuestToken,
    Session,
    SessionRequest,
    SessionState,
)
from parley.transport.guest import GuestRequest
from parley.transport.openapi.registry import Access, Operation, nothing, ok

# Signing in is what a caller without a token does, so these routes are public.
auth = partial(Operation, tag="auth", access=Access.PUBLIC)

_COOKIE = {"set-cookie": "The httpOnly session cookie (`parley_session`)."}

AUTH = (
    auth(
        "GET",
        "/auth/session",
        "Whether this browser is signed in",
        ok(SessionState, "Signed in or not; never a 401."),
    ),
    auth(
        "POST",
        "/auth/session",
        "Turn a token into the browser's session cookie",
        ok(Session, "Signed in; the cookie is set.", headers=_COOKIE),
        description='The token comes in the Authorization header or as `{"token"}`.',
        body=SessionRequest,
        body_required=False,
        errors=(401, 403, 413),
    ),
    auth(
        "DELETE",
        "/auth/session",
        "Sign out: clear the session cookie",
        {204: nothing("Signed out.")},
        errors=(403,),
    ),
    auth(
        "GET",
        "/auth/me",
        "The current user",
        ok(Session, "Who the token or cookie belongs to."),
        access=Access.USER,
    ),
    auth(
        "POST",
        "/auth/dev-login",
        "Sign in by name (only with dev login enabled)",
        ok(Session, "Signed in; the cookie is set.", headers=_COOKIE),
        body=DevLoginRequest,
        example={"name": "Alice"},
        errors=(403, 404, 413),
    ),
    auth(
        "POST",
        "/v1/guest",
        "A short-lived token for an anonymous visitor (the widget)",
        ok(GuestToken, "The token, when it expires, and the guest's id."),
        description=(
            "Only agents with a `guests` section in agents.yaml take guests. A browser on "
            "another site must be one of the agent's `sites`. The token opens the chat "
            "WebSocket with that agent and nothing else; limited per client address and "
            "per site (429 with `Retry-After`)."
        ),
        body=GuestRequest,
        errors=(403, 404),
    ),
)
