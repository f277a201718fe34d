"""The /auth endpoints, driven over HTTP through a small app built from auth_routes()."""

from __future__ import annotations

import time
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.testclient import TestClient

from parley.auth.http import SESSION_COOKIE
from parley.auth.routes import auth_routes
from parley.auth.tokens import TokenVerifier, mint_token
from parley.config import Settings

SECRET = "c" * 48
DEV_SECRET = "d" * 48
BASE = "http://parley.test"


def _client(settings: Settings, dev_secret: str | None = None) -> TestClient:
    verifier = TokenVerifier.from_settings(settings, dev_secret)
    app = Starlette(routes=auth_routes(verifier, settings, dev_secret))
    return TestClient(app, base_url=BASE)


def _set_cookie(headers: Mapping[str, str]) -> dict[str, Any]:
    """The session cookie's value and attributes, as the browser would see them."""
    header = headers["set-cookie"]
    morsel = SimpleCookie(header)[SESSION_COOKIE]
    flags = {part.strip().lower() for part in header.split(";")}
    return {
        "value": morsel.value,
        "max-age": int(morsel["max-age"]) if morsel["max-age"] else None,
        "path": morsel["path"],
        "samesite": morsel["samesite"].lower(),
        "httponly": "httponly" in flags,
        "secure": "secure" in flags,
    }


@pytest.fixture
def client() -> TestClient:
    return _client(Settings(jwt_secret=SECRET))


def test_session_from_bearer_header_sets_a_strict_cookie(client: TestClient) -> None:
    token = mint_token(SECRET, user_id="u1", name="Ada", ttl_seconds=600)
    response = client.post("/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"user": {"id": "u1", "name": "Ada", "admin": False}}
    cookie = _set_cookie(response.headers)
    assert cookie["value"] == token
    assert cookie["httponly"] and cookie["samesite"] == "strict" and cookie["path"] == "/"
    assert not cookie["secure"]
    assert 590 <= cookie["max-age"] <= 600  # lives no longer than the token


def test_session_from_json_body_then_me_then_logout(client: TestClient) -> None:
    token = mint_token(SECRET, user_id="u7", admin=True)
    assert client.post("/auth/session", json={"token": token}).status_code == 200
    me = client.get("/auth/me")
    assert me.json() == {"user": {"id": "u7", "name": "u7", "admin": True}}
    logout = client.delete("/auth/session")
    assert logout.status_code == 204
    assert _set_cookie(logout.headers)["max-age"] == 0
    assert client.get("/auth/me").status_code == 401


def test_secure_cookie_when_configured() -> None:
    client = _client(Settings(jwt_secret=SECRET, cookie_secure=True))
    token = mint_token(SECRET, user_id="u1")
    response = client.post("/auth/session", json={"token": token})
    assert _set_cookie(response.headers)["secure"]
    assert _set_cookie(client.delete("/auth/session").headers)["secure"]


def test_me_accepts_a_bearer_header(client: TestClient) -> None:
    token = mint_token(SECRET, user_id="u1")
    response = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json()["user"]["id"] == "u1"


def test_me_without_credentials_is_a_json_401(client: TestClient) -> None:
    response = client.get("/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "Authentication is required."}
    }


def test_the_session_probe_answers_200_signed_in_or_not(client: TestClient) -> None:
    # The chat page asks this on load: a signed-out visit must not log a failed request.
    signed_out = client.get("/auth/session")
    assert signed_out.status_code == 200
    assert signed_out.json() == {"signed_in": False, "user": None}
    forged = mint_token("x" * 48, user_id="u1")
    stale = client.get("/auth/session", headers={"Authorization": f"Bearer {forged}"})
    assert stale.json() == {"signed_in": False, "user": None}
    token = mint_token(SECRET, user_id="u3")
    assert client.post("/auth/session", json={"token": token}).status_code == 200
    assert client.get("/auth/session").json() == {
        "signed_in": True,
        "user": {"id": "u3", "name": "u3", "admin": False},
    }


def test_invalid_tokens_set_no_cookie(client: TestClient) -> None:
    forged = mint_token("x" * 48, user_id="u1")
    response = client.post("/auth/session", json={"token": forged})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "bad signature"}}
    assert "set-cookie" not in response.headers
    expired = jwt.encode({"sub": "u1", "exp": int(time.time()) - 300}, SECRET, algorithm="HS256")
    response = client.post("/auth/session", json={"token": expired})
    assert response.json()["error"]["message"] == "token expired"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 401),
        ({"token": 42}, 400),
        ({"token": "  "}, 400),
        (["token"], 400),
    ],
)
def test_session_body_validation(client: TestClient, body: Any, status: int) -> None:
    response = client.post("/auth/session", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] in {"unauthorized", "bad_request"}


def test_session_body_must_be_json_and_small(client: TestClient) -> None:
    assert client.post("/auth/session", content=b"{not json").status_code == 400
    huge = client.post("/auth/session", content=b"{" + b" " * 20_000 + b"}")
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "too_large"


def test_cross_site_requests_are_refused(client: TestClient) -> None:
    token = mint_token(SECRET, user_id="u1")
    evil = {"Origin": "https://evil.example"}
    login = client.post("/auth/session", json={"token": token}, headers=evil)
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "forbidden"
    assert "set-cookie" not in login.headers
    assert client.delete("/auth/session", headers=evil).status_code == 403
    same_site = client.post("/auth/session", json={"token": token}, headers={"Origin": BASE})
    assert same_site.status_code == 200


def test_configured_origins_are_allowed() -> None:
    settings = Settings(jwt_secret=SECRET, allowed_origins=["https://chat.example.com"])
    client = _client(settings)
    token = mint_token(SECRET, user_id="u1")
    headers = {"Origin": "https://chat.example.com"}
    assert client.post("/auth/session", json={"token": token}, headers=headers).status_code == 200


# --- dev login -----------------------------------------------------------


@pytest.fixture
def dev_client() -> TestClient:
    return _client(Settings(), dev_secret=DEV_SECRET)


def test_dev_login_signs_in_by_name(dev_client: TestClient) -> None:
    response = dev_client.post("/auth/dev-login", json={"name": "  Ada Lovelace "})
    assert response.status_code == 200
    assert response.json() == {
        "user": {"id": "dev-ada-lovelace", "name": "Ada Lovelace", "admin": False}
    }
    cookie = _set_cookie(response.headers)
    assert cookie["httponly"] and cookie["samesite"] == "strict"
    assert cookie["max-age"] == 12 * 3600
    assert dev_client.get("/auth/me").json()["user"]["id"] == "dev-ada-lovelace"


def test_dev_login_makes_admins_of_the_listed_names_only() -> None:
    client = _client(Settings(dev_admins="Dana, Sam "), dev_secret=DEV_SECRET)
    for name, admin in (("Dana", True), ("dana", True), ("Sam", True), ("Ada", False)):
        user = client.post("/auth/dev-login", json={"name": name}).json()["user"]
        assert user["admin"] is admin, name
    # The admin role is in the cookie's token itself, so every endpoint sees it.
    assert client.get("/auth/me").json()["user"] == {"id": "dev-ada", "name": "Ada", "admin": False}


def test_the_dev_sign_in_name_admin_is_an_admin_by_default(dev_client: TestClient) -> None:
    user = dev_client.post("/auth/dev-login", json={"name": "Admin"}).json()["user"]
    assert user == {"id": "dev-admin", "name": "Admin", "admin": True}


def test_dev_login_same_name_same_user(dev_client: TestClient) -> None:
    first = dev_client.post("/auth/dev-login", json={"name": "Zoë"}).json()["user"]["id"]
    again = dev_client.post("/auth/dev-login", json={"name": "zoë"}).json()["user"]["id"]
    other = dev_client.post("/auth/dev-login", json={"name": "Zed"}).json()["user"]["id"]
    assert first == again == "dev-zoe"
    assert other != first
    japanese = dev_client.post("/auth/dev-login", json={"name": "花子"}).json()["user"]["id"]
    assert japanese.startswith("dev-") and len(japanese) > len("dev-")


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 65}, {"name": "a\nb"}, {"name": 7}],
)
def test_dev_login_validates_the_name(dev_client: TestClient, body: dict[str, Any]) -> None:
    response = dev_client.post("/auth/dev-login", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "set-cookie" not in response.headers


def test_dev_login_refuses_cross_site(dev_client: TestClient) -> None:
    response = dev_client.post(
        "/auth/dev-login", json={"name": "Ada"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


def test_dev_login_is_404_when_disabled() -> None:
    client = _client(Settings(dev_login=False), dev_secret=DEV_SECRET)
    response = client.post("/auth/dev-login", json={"name": "Ada"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_dev_login_is_404_when_a_real_key_is_configured() -> None:
    # Dev login defaults to off once a key is configured.
    assert (
        _client(Settings(jwt_secret=SECRET))
        .post("/auth/dev-login", json={"name": "Ada"})
        .status_code
        == 404
    )


def test_dev_login_is_404_without_a_signing_secret() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(jwt_public_key=pem.decode(), dev_login=True)
    response = _client(settings, dev_secret=DEV_SECRET).post("/auth/dev-login", json={"name": "A"})
    assert response.status_code == 404


def test_dev_login_signs_with_the_configured_secret_when_enabled() -> None:
    settings = Settings(jwt_secret=SECRET, dev_login=True, jwt_audience="parley")
    client = _client(settings, dev_secret=None)
    response = client.post("/auth/dev-login", json={"name": "Ada"})
    assert response.status_code == 200
    claims = jwt.decode(
        _set_cookie(response.headers)["value"], SECRET, algorithms=["HS256"], audience="parley"
    )
    assert claims["sub"] == "dev-ada"
    assert claims["name"] == "Ada"
