"""CORS for the REST API under ``/v1/``: which other sites' pages may call it.

- ``PARLEY_ALLOWED_ORIGINS``, listed by name: every ``/v1/`` route, with
  credentials (``Access-Control-Allow-Credentials: true``: the session cookie
  of a sibling site). ``*`` there allows any origin, never with credentials:
  the answer says ``Access-Control-Allow-Origin: *``.
- The ``sites`` of agents that take guests (agents.yaml): ``POST /v1/guest``
  only, without credentials.

Any other origin gets no CORS headers, so the browser keeps the answer from
the page, and its preflights are refused (403). Every answer under ``/v1/``
says ``Vary: Origin``: caches must not hand one origin's answer to another.
The sites are read from the current catalog, so a reload changes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.auth.http import origin_allowed
from parley.errors import Forbidden
from parley.transport.http import error_response

API_PREFIX = "/v1/"
GUEST_PATH = "/v1/guest"
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "idempotency-key",
    "x-request-id",
    "parley-conversation-id",
)
EXPOSED_HEADERS = "Retry-After, X-Request-ID, Parley-Conversation-Id"
MAX_AGE_SECONDS = 600


@dataclass(frozen=True)
class Grant:
    """What an origin may do: read answers (``origin``: echoed or ``*``), with cookies or not."""

    origin: str
    credentials: bool

    def headers(self) -> dict[str, str]:
        headers = {"Access-Control-Allow-Origin": self.origin}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers


class CorsPolicy:
    def __init__(self, allowed_origins: Sequence[str]) -> None:
        self._named = [origin for origin in allowed_origins if origin != "*"]
        self._anyone = "*" in allowed_origins

    def grant(self, origin: str, path: str, guest_sites: frozenset[str]) -> Grant | None:
        if origin_allowed(origin, host_header=None, allowed=self._named):
            return Grant(origin, credentials=True)
        if self._anyone:
            return Grant("*", credentials=False)
        if path == GUEST_PATH and origin_allowed(origin, host_header=None, allowed=[*guest_sites]):
            return Grant(origin, credentials=False)
        return None


class CorsMiddleware:
    """Applies :class:`CorsPolicy`; outside the auth and rate-limit middleware, so a
    preflight needs neither, and their refusals carry the CORS headers too."""

    def __init__(
        self,
        app: ASGIApp,
        allowed_origins: Sequence[str],
        guest_sites: Callable[[Scope], frozenset[str]],
    ) -> None:
        self.app = app
        self.policy = CorsPolicy(allowed_origins)
        self.guest_sites = guest_sites

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        grant = None
        if not origin_allowed(origin, host_header=headers.get("host"), allowed=()):
            assert origin is not None  # a missing Origin is "allowed": no CORS involved
            grant = self.policy.grant(origin, scope["path"], self.guest_sites(scope))
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                await _preflight(grant, headers)(scope, receive, send)
                return
        await self.app(scope, receive, _with_cors(send, grant))


def _preflight(grant: Grant | None, headers: Headers) -> Response:
    if grant is None:
        refused = error_response(Forbidden("origin not allowed"))
        refused.headers.add_vary_header("Origin")
        return refused
    asked = [
        h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")
    ]
    response = Response(
        status_code=204,
        headers={
            **grant.headers(),
            "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
            "Access-Control-Allow-Headers": ", ".join(
                h for h in dict.fromkeys([*ALLOWED_HEADERS, *asked]) if h in ALLOWED_HEADERS
            ),
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
        },
    )
    response.headers.add_vary_header("Origin")
    return response


def _with_cors(send: Send, grant: Grant | None) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.add_vary_header("Origin")
            if grant is not None:
                for name, value in grant.headers().items():
                    headers[name] = value
                headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        await send(message)

    return sending


def catalog_guest_sites(scope: Scope) -> frozenset[str]:
    """The current catalog's guest sites (none before the services have started)."""
    services = getattr(scope["app"].state, "services", None)
    if services is None:
        return frozenset()
    sites: frozenset[str] = services.catalog.current.guest_sites()
    return sites
