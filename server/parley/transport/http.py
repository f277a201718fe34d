"""HTTP plumbing shared by the REST endpoints: who is calling, and errors.

:class:`PrincipalMiddleware` verifies the caller's token once per request
and leaves the principal on ``request.state`` for the per-user rate limiter
and the endpoints. Errors leave as ``{"error": {"code", "message"}}``, also
Starlette's own (no such route, method not allowed).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from parley.auth.http import authenticate
from parley.auth.tokens import Principal
from parley.errors import (
    BadRequest,
    Forbidden,
    Internal,
    NotFound,
    ParleyError,
    Unauthorized,
    error_body,
)
from parley.observability import context
from parley.transport.failures import client_error

GUEST_REFUSED = "A guest token only opens a chat with its agent, over the WebSocket."


class PrincipalMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            connection = HTTPConnection(scope)
            services = getattr(connection.app.state, "services", None)
            principal = None
            if services is not None:
                try:
                    principal = await authenticate(
                        connection,
                        services.chat_verifier,  # knows guest tokens, to refuse them by name
                        allowed_origins=services.settings.allowed_origins,
                    )
                except ParleyError as error:
                    scope.setdefault("state", {})["auth_error"] = error
                if principal is not None and principal.guest_agent is not None:
                    principal = None  # a guest chats over the WebSocket only
                    scope.setdefault("state", {})["auth_error"] = Forbidden(GUEST_REFUSED)
            if principal is not None:
                context.bind(user_id=principal.user_id)  # for this request's log lines
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def current_user(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise getattr(request.state, "auth_error", None) or Unauthorized()
    return principal


def error_response(error: ParleyError, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error_body(error), **extra}, status_code=error.http_status)


async def handle_error(request: Request, exc: Exception) -> Response:
    return error_response(client_error(exc, context=f"{request.method} {request.url.path}"))


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors in the same body as every other error.

    The HTTP status (and headers such as ``Allow``) stay Starlette's; a 405
    has no code of its own and is a ``bad_request``.
    """
    assert isinstance(exc, HTTPException)
    error: ParleyError
    if exc.status_code == 404:
        error = NotFound("No such path.")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        error = BadRequest(f"{request.method} is not allowed here; use {allowed}.")
    elif exc.status_code >= 500:
        error = Internal(exc.detail)
    else:
        error = BadRequest(exc.detail)
    return JSONResponse(
        {"error": error_body(error)}, status_code=exc.status_code, headers=exc.headers
    )
