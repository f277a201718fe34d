"""Finding the caller's token in a request, and the Origin check that guards cookies.

A token comes from the ``Authorization`` header or the session cookie, never
from the URL (URLs end up in access logs and browser history). A WebSocket
client that cannot set headers (a browser on another origin, Node's
WebSocket) offers it as a subprotocol instead: ``parley.token.<jwt>`` beside
``parley.v1``, of which the server selects only ``parley.v1``. Browsers send
the cookie on cross-site requests too, so anything that relies on it and
changes state (an unsafe method, or a WebSocket) must come from an allowed
Origin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from parley.auth.tokens import Principal, VerifiedToken, Verifier
from parley.errors import Forbidden, Unauthorized

SESSION_COOKIE = "parley_session"
# The WebSocket subprotocol of this protocol, and the prefix of the one that carries a token.
WS_SUBPROTOCOL = "parley.v1"
TOKEN_SUBPROTOCOL_PREFIX = "parley.token."
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# (scheme, host, port)
_Origin = tuple[str, str, int | None]


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    value = _header(headers, "authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def subprotocol_token(subprotocols: Sequence[str]) -> str | None:
    """The token of a ``parley.token.<jwt>`` WebSocket subprotocol, if one was offered."""
    for offered in subprotocols:
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return offered.removeprefix(TOKEN_SUBPROTOCOL_PREFIX) or None
    return None


def selected_subprotocol(subprotocols: Sequence[str]) -> str | None:
    """The subprotocol to accept a WebSocket with: ``parley.v1`` if offered.

    Never the token's: the response header must not echo a credential.
    """
    return WS_SUBPROTOCOL if WS_SUBPROTOCOL in subprotocols else None


def token_from_headers(headers: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
    """The bearer token if given, else the session cookie."""
    return bearer_token(headers) or cookies.get(SESSION_COOKIE) or None


def origin_allowed(origin: str | None, *, host_header: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request with this ``Origin`` may use the session cookie.

    ``allowed`` holds exact origins (``https://chat.example.com``) or ``*``.
    Same-origin requests (the Origin's host and port equal the Host header) are
    always allowed, and so is a missing Origin: browsers always send one on
    cross-site unsafe requests and WebSockets, so its absence means another
    kind of client, which can't be tricked into sending someone's cookie.
    """
    if origin is None or "*" in allowed:
        return True
    parsed = _parse_origin(origin)
    if parsed is None:
        return False  # "null" (sandboxed frames, file://) or garbage.
    if any(parsed == _parse_origin(entry) for entry in allowed):
        return True
    return host_header is not None and _same_host(parsed, host_header)


async def authenticate(
    connection: HTTPConnection,
    verifier: Verifier,
    *,
    allowed_origins: Sequence[str] = (),
) -> Principal:
    """The verified caller; raises ``Unauthorized``.

    When the token came from the cookie and the request changes state (unsafe
    method or WebSocket), the Origin must pass :func:`origin_allowed`, else
    ``Forbidden``.
    """
    verified = await authenticate_token(connection, verifier, allowed_origins=allowed_origins)
    return verified.principal


async def authenticate_token(
    connection: HTTPConnection,
    verifier: Verifier,
    *,
    allowed_origins: Sequence[str] = (),
) -> VerifiedToken:
    """Like :func:`authenticate`, with the token's expiry (a WebSocket closes at it)."""
    token = bearer_token(connection.headers)
    if token is None and connection.scope["type"] == "websocket":
        token = subprotocol_token(connection.scope.get("subprotocols", ()))
    if token is None:
        token = connection.cookies.get(SESSION_COOKIE) or None
        if token is None:
            raise Unauthorized()
        if _changes_state(connection):
            check_origin(connection, allowed_origins)
    return await verifier.verify_claims(token)


def check_origin(connection: HTTPConnection, allowed_origins: Sequence[str]) -> None:
    """Raise ``Forbidden`` unless the connection's Origin is allowed."""
    headers = connection.headers
    if not origin_allowed(
        headers.get("origin"), host_header=headers.get("host"), allowed=allowed_origins
    ):
        raise Forbidden("origin not allowed")


def _changes_state(connection: HTTPConnection) -> bool:
    if connection.scope["type"] == "websocket":
        return True
    return connection.scope.get("method", "GET") not in SAFE_METHODS


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Starlette's Headers ignore case already; a plain dict may not.
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _parse_origin(text: str) -> _Origin | None:
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS.get(scheme)


def _same_host(origin: _Origin, host_header: str) -> bool:
    scheme, host, port = origin
    try:
        parts = urlsplit("//" + host_header.strip())
        host_port = parts.port
    except ValueError:
        return False
    if not parts.hostname or parts.username or parts.password or parts.path:
        return False
    # A Host header without a port means the default port of the Origin's scheme.
    return (parts.hostname.lower(), host_port or _DEFAULT_PORTS.get(scheme)) == (host, port)
