"""Where tokens are read from, and the Origin check that guards the session cookie."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.auth.http import SESSION_COOKIE, authenticate, origin_allowed, token_from_headers
from parley.auth.tokens import TokenVerifier, mint_token
from parley.errors import ParleyError

SECRET = "k" * 48
ALLOWED = ("https://chat.example.com",)


def test_bearer_header_wins_over_cookie() -> None:
    headers = {"Authorization": "Bearer from-header"}
    assert token_from_headers(headers, {SESSION_COOKIE: "from-cookie"}) == "from-header"


def test_header_name_and_scheme_are_case_insensitive() -> None:
    assert token_from_headers({"authorization": "bearer abc"}, {}) == "abc"


def test_cookie_is_used_without_a_bearer_header() -> None:
    cookies = {SESSION_COOKIE: "from-cookie"}
    assert token_from_headers({}, cookies) == "from-cookie"
    assert token_from_headers({"Authorization": "Basic dXNlcjpwdw=="}, cookies) == "from-cookie"
    assert token_from_headers({"Authorization": "Bearer "}, cookies) == "from-cookie"


def test_no_credentials() -> None:
    assert token_from_headers({}, {}) is None
    assert token_from_headers({}, {SESSION_COOKIE: ""}) is None


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "expected"),
    [
        (None, "api.example.com", (), True),  # non-browser client
        ("https://chat.example.com", "api.example.com", ALLOWED, True),
        ("HTTPS://Chat.Example.com/", "api.example.com", ALLOWED, True),
        ("https://chat.example.com:443", "api.example.com", ALLOWED, True),
        ("https://chat.example.com:8443", "api.example.com", ALLOWED, False),
        ("http://chat.example.com", "api.example.com", ALLOWED, False),
        ("https://evil.example.com", "api.example.com", ALLOWED, False),
        ("https://chat.example.com.evil.io", "api.example.com", ALLOWED, False),
        ("https://evil.example.com", "api.example.com", ("*",), True),
        ("http://localhost:8080", "localhost:8080", (), True),  # same origin
        ("http://localhost:8080", "localhost:8000", (), False),
        ("https://api.example.com", "api.example.com", (), True),
        ("https://api.example.com", "api.example.com:80", (), False),
        ("http://[::1]:8000", "[::1]:8000", (), True),
        ("null", "api.example.com", (), False),
        ("", "api.example.com", (), False),
        ("https://user@api.example.com", "api.example.com", (), False),
        ("https://api.example.com/path", "api.example.com", (), False),
        ("http://localhost:99999", "localhost:99999", (), False),
        ("https://api.example.com", None, (), False),
    ],
)
def test_origin_allowed(
    origin: str | None, host: str | None, allowed: tuple[str, ...], expected: bool
) -> None:
    assert origin_allowed(origin, host_header=host, allowed=allowed) is expected


def _app(verifier: TokenVerifier) -> Starlette:
    async def whoami(request: Request) -> Response:
        try:
            principal = await authenticate(request, verifier, allowed_origins=ALLOWED)
        except ParleyError as error:
            return JSONResponse({"error": error.code.value}, status_code=error.http_status)
        return JSONResponse({"user": principal.user_id})

    async def socket(websocket: WebSocket) -> None:
        try:
            principal = await authenticate(websocket, verifier, allowed_origins=ALLOWED)
        except ParleyError as error:
            await websocket.close(code=4000 + error.http_status)
            return
        await websocket.accept()
        await websocket.send_json({"user": principal.user_id})
        await websocket.close()

    return Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET", "POST"]),
            WebSocketRoute("/ws", socket),
        ]
    )


@pytest.fixture
def client() -> TestClient:
    return TestClient(_app(TokenVerifier(secret=SECRET)), base_url="http://api.example.com")


def _token(user_id: str = "u1") -> str:
    return mint_token(SECRET, user_id=user_id)


def test_authenticate_with_header_or_cookie(client: TestClient) -> None:
    assert client.get("/whoami", headers={"Authorization": f"Bearer {_token()}"}).json() == {
        "user": "u1"
    }
    client.cookies.set(SESSION_COOKIE, _token("u2"))
    assert client.get("/whoami").json() == {"user": "u2"}


def test_missing_or_invalid_credentials_are_unauthorized(client: TestClient) -> None:
    assert client.get("/whoami").status_code == 401
    assert client.get("/whoami", headers={"Authorization": "Bearer junk"}).status_code == 401


def test_token_in_the_url_is_ignored(client: TestClient) -> None:
    response = client.get("/whoami", params={"token": _token(), "access_token": _token()})
    assert response.status_code == 401


def test_cookie_post_needs_an_allowed_origin(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, _token())
    cross_site = client.post("/whoami", headers={"Origin": "https://evil.example.com"})
    assert cross_site.status_code == 403
    assert cross_site.json() == {"error": "forbidden"}
    for origin in ("https://chat.example.com", "http://api.example.com"):
        assert client.post("/whoami", headers={"Origin": origin}).status_code == 200
    assert client.post("/whoami").status_code == 200  # no Origin: not a browser


def test_cookie_get_is_not_origin_checked(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, _token())
    response = client.get("/whoami", headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 200


def test_bearer_post_is_not_origin_checked(client: TestClient) -> None:
    headers = {"Origin": "https://evil.example.com", "Authorization": f"Bearer {_token()}"}
    assert client.post("/whoami", headers=headers).status_code == 200


def test_websocket_with_cookie_from_allowed_origin(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, _token())
    with client.websocket_connect("/ws", headers={"Origin": "https://chat.example.com"}) as ws:
        assert ws.receive_json() == {"user": "u1"}


def test_websocket_with_cookie_from_foreign_origin_is_refused(client: TestClient) -> None:
    # Cross-site WebSocket hijacking: the browser attaches the cookie anyway.
    client.cookies.set(SESSION_COOKIE, _token())
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/ws", headers={"Origin": "https://evil.example.com"}),
    ):
        pass
    assert refused.value.code == 4403


def test_websocket_without_credentials_is_refused(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 4401
