"""HTTP endpoints that turn a token into a browser session cookie, and back.

- ``POST /auth/session``: verify a bearer token (header or ``{"token"}``), set the cookie.
- ``DELETE /auth/session``: clear the cookie.
- ``GET /auth/me``: the current user (401 when signed out).
- ``GET /auth/session``: whether this browser is signed in, always 200:
  ``{"signed_in": true, "user": {...}}`` or ``{"signed_in": false, "user": null}``.
  The chat page probes this on load, so a signed-out visit logs no failed request.
- ``POST /auth/dev-login``: sign in by name; only when dev login is enabled.

The cookie is httpOnly (page scripts can't read it) and SameSite=Strict, and
every unsafe request here must pass the Origin check, which also stops a
cross-site form from logging the victim into someone else's account.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parley.auth.dev import DEV_TOKEN_TTL_SECONDS, clean_name, dev_user_id
from parley.auth.http import SESSION_COOKIE, authenticate, bearer_token, check_origin
from parley.auth.tokens import Principal, TokenVerifier, mint_token
from parley.config import Settings
from parley.errors import (
    BadRequest,
    Internal,
    NotFound,
    ParleyError,
    TooLarge,
    Unauthorized,
    error_body,
)
from parley.transport.bodies.auth import Session, SessionState, User
from parley.transport.bodies.base import respond

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
# Browsers drop cookies over 4096 bytes (name and attributes included).
MAX_COOKIE_TOKEN_CHARS = 3800

Endpoint = Callable[[Request], Awaitable[Response]]


def auth_routes(verifier: TokenVerifier, settings: Settings, dev_secret: str | None) -> list[Route]:
    endpoints = _AuthEndpoints(verifier, settings, _dev_signing_secret(settings, dev_secret))
    return [
        Route("/auth/session", _json_errors(endpoints.session), methods=["GET"]),
        Route("/auth/session", _json_errors(endpoints.create_session), methods=["POST"]),
        Route("/auth/session", _json_errors(endpoints.delete_session), methods=["DELETE"]),
        Route("/auth/me", _json_errors(endpoints.me), methods=["GET"]),
        Route("/auth/dev-login", _json_errors(endpoints.dev_login), methods=["POST"]),
    ]


class _AuthEndpoints:
    def __init__(self, verifier: TokenVerifier, settings: Settings, dev_secret: str | None) -> None:
        self._verifier = verifier
        self._settings = settings
        self._dev_secret = dev_secret

    async def create_session(self, request: Request) -> Response:
        check_origin(request, self._settings.allowed_origins)
        token = bearer_token(request.headers) or _token_field(await _read_json(request))
        if token is None:
            raise Unauthorized("no token given")
        verified = await self._verifier.verify_claims(token)
        if len(token) > MAX_COOKIE_TOKEN_CHARS:
            raise BadRequest("token too large to keep in a cookie")
        max_age = max(0, verified.expires_at - int(time.time()))
        return self._signed_in(verified.principal, token, max_age)

    async def delete_session(self, request: Request) -> Response:
        check_origin(request, self._settings.allowed_origins)
        response = Response(status_code=204)
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            secure=self._settings.cookie_secure,
            httponly=True,
            samesite="strict",
        )
        return response

    async def session(self, request: Request) -> Response:
        try:
            principal = await authenticate(
                request, self._verifier, allowed_origins=self._settings.allowed_origins
            )
        except Unauthorized:
            return respond(SessionState(signed_in=False, user=None))
        return respond(SessionState(signed_in=True, user=_user(principal)))

    async def me(self, request: Request) -> Response:
        principal = await authenticate(
            request, self._verifier, allowed_origins=self._settings.allowed_origins
        )
        return respond(Session(user=_user(principal)))

    async def dev_login(self, request: Request) -> Response:
        if self._dev_secret is None or not self._settings.dev_login_enabled:
            raise NotFound()
        check_origin(request, self._settings.allowed_origins)
        body = await _read_json(request)
        name = clean_name(body.get("name"))
        user_id = dev_user_id(name)
        token = mint_token(
            self._dev_secret,
            user_id=user_id,
            name=name,
            ttl_seconds=DEV_TOKEN_TTL_SECONDS,
            # Only names the operator listed; anyone may sign in under any name.
            admin=user_id in {dev_user_id(admin) for admin in self._settings.dev_admins},
            audience=self._settings.jwt_audience,
            issuer=self._settings.jwt_issuer,
        )
        try:
            # Round-trip through the verifier: a cookie it would reject is useless.
            principal = await self._verifier.verify(token)
        except Unauthorized as error:
            log.error("dev login token failed verification: %s", error.message)
            raise Internal("dev login is misconfigured") from None
        return self._signed_in(principal, token, DEV_TOKEN_TTL_SECONDS)

    def _signed_in(self, principal: Principal, token: str, max_age: int) -> Response:
        response = respond(Session(user=_user(principal)))
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=max_age,
            path="/",
            secure=self._settings.cookie_secure,
            httponly=True,
            samesite="strict",
        )
        return response


def _dev_signing_secret(settings: Settings, dev_secret: str | None) -> str | None:
    """The secret dev login signs with: the one the verifier checks, or none."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if settings.has_configured_jwt_key:
        return None  # Public key or JWKS: we can't sign tokens those accept.
    return dev_secret


def _json_errors(endpoint: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ParleyError as error:
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
            return JSONResponse(
                {"error": error_body(error)}, status_code=error.http_status, headers=headers
            )

    return wrapped


async def _read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object (``{}`` when empty), read at most ``MAX_BODY_BYTES``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise TooLarge("request body too large")
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("body must be JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _token_field(body: dict[str, Any]) -> str | None:
    token = body.get("token")
    if token is None:
        return None
    if not isinstance(token, str) or not token.strip():
        raise BadRequest("token must be a non-empty string")
    return token.strip()


def _user(principal: Principal) -> User:
    return User(id=principal.user_id, name=principal.name, admin=principal.admin)
