"""An id for every HTTP request and WebSocket connection: in its log lines and its response.

A proxy's id (nginx's ``$request_id`` sent as ``X-Request-ID``) is kept when
it looks like one, so a request can be followed from the proxy's log into
Parley's; otherwise Parley makes one. HTTP responses carry it back in
``X-Request-ID``.
"""

from __future__ import annotations

import re
import secrets

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.observability import context

HEADER = "X-Request-ID"
_USABLE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER)
        request_id = given if given and _USABLE.fullmatch(given) else secrets.token_hex(8)
        # Bound for the rest of the task, not just this call: uvicorn runs each
        # request in a task of its own (so the id goes nowhere else), and logs
        # an unhandled error after the application has returned.
        context.bind(request_id=request_id)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(HEADER, request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)
