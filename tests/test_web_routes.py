"""The chat UI routes on their own: the page, its security headers, its static files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from parley.web import content_security_policy, web_routes

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
# The JavaScript client's modules, served at /static/client/ (the UI and the widget import them).
CLIENT_DIR = Path(__file__).resolve().parents[1] / "clients" / "js" / "src"


def _client(*, dev_login_enabled: bool = True, max_message_chars: int | None = None) -> TestClient:
    routes = web_routes(
        WEB_DIR,
        dev_login_enabled=dev_login_enabled,
        max_message_chars=max_message_chars,
        client_dir=CLIENT_DIR,
    )
    app = Starlette(routes=routes)
    return TestClient(app)


def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_page_renders_with_dev_login() -> None:
    response = _client(dev_login_enabled=True).get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'data-dev-login="true"' in html
    assert 'id="signin-name"' in html
    assert 'id="signin-token"' not in html
    for hook in (
        "message-input",
        "send-button",
        "stop-button",
        "agent-picker",
        "conversation-list",
        "messages",
        "connection-status",
        "signout",
        "new-chat",
    ):
        assert f'id="{hook}"' in html
    assert 'aria-live="polite"' in html


def test_page_renders_token_form_without_dev_login() -> None:
    html = _client(dev_login_enabled=False).get("/").text
    assert 'data-dev-login="false"' in html
    assert 'id="signin-token"' in html
    assert 'id="signin-name"' not in html


def test_max_message_chars_reaches_the_page() -> None:
    html = _client(max_message_chars=1234).get("/").text
    assert 'data-max-message-chars="1234"' in html


@pytest.mark.parametrize("path", ["/", "/console"])
def test_page_has_no_inline_script_or_style(path: str) -> None:
    html = _client().get(path).text
    assert " style=" not in html
    assert "<style" not in html
    for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S):
        attrs, content = match.groups()
        assert "src=" in attrs and not content.strip()
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"


def test_console_page_is_served_like_the_chat() -> None:
    response = _client().get("/console", headers={"host": "chat.example.test"})
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == content_security_policy(
        "chat.example.test"
    )
    for hook in ("queue", "transcript", "take-over", "release", "operator-input", "export-link"):
        assert f'id="{hook}"' in response.text


def test_csp_is_strict() -> None:
    response = _client().get("/", headers={"host": "chat.example.test:8443"})
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    d = _directives(csp)
    assert d["default-src"] == ["'self'"]
    assert d["script-src"] == ["'self'"]
    assert d["style-src"] == ["'self'"]
    assert d["img-src"] == ["'self'", "data:"]
    assert d["connect-src"] == [
        "'self'",
        "ws://chat.example.test:8443",
        "wss://chat.example.test:8443",
    ]
    assert d["frame-ancestors"] == ["'none'"]
    assert d["base-uri"] == ["'none'"]
    assert d["form-action"] == ["'self'"]
    assert d["object-src"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(
    "host",
    ["evil.test; script-src *", "a b", "x'y", "", "host/path", "[::1", "a" * 300],
)
def test_csp_ignores_a_suspicious_host_header(host: str) -> None:
    d = _directives(content_security_policy(host))
    assert d["connect-src"] == ["'self'"]
    assert d["script-src"] == ["'self'"]


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "chat.example.com"])
def test_csp_accepts_ordinary_hosts(host: str) -> None:
    d = _directives(content_security_policy(host))
    assert d["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]


def test_static_files_are_served() -> None:
    client = _client()
    for path, kind in [
        ("/static/app.css", "text/css"),
        ("/static/js/app.js", "javascript"),
        ("/static/js/markdown.js", "javascript"),
        ("/static/vendor/marked/marked.esm.js", "javascript"),
        ("/static/vendor/dompurify/purify.es.js", "javascript"),
        ("/static/favicon.svg", "image/svg+xml"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../templates/index.html").status_code == 404


def test_static_files_revalidate_cheaply() -> None:
    client = _client()
    first = client.get("/static/app.css")
    etag = first.headers["etag"]
    second = client.get("/static/app.css", headers={"if-none-match": etag})
    assert second.status_code == 304


@pytest.mark.parametrize("path", ["/", "/console"])
def test_every_asset_the_page_references_exists(path: str) -> None:
    client = _client()
    html = client.get(path).text
    refs = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', html))
    assert refs
    for ref in refs:
        assert client.get(ref).status_code == 200, ref
    # ...and every module those scripts import.
    for module in (WEB_DIR / "static" / "js").glob("*.js"):
        for target in re.findall(r"from\s+'([^']+)'", module.read_text()):
            found = (module.parent / target).resolve()
            served = WEB_DIR / "static" / "client"
            if found.is_relative_to(served):  # /static/client/ is clients/js/src
                found = CLIENT_DIR / found.relative_to(served)
            assert found.is_file(), f"{module.name} imports {target}"


def test_vendored_libraries_are_recorded() -> None:
    readme = (WEB_DIR / "static" / "vendor" / "README.md").read_text()
    for name in ("marked", "dompurify"):
        assert name in readme.lower()
        assert (WEB_DIR / "static" / "vendor" / name / "LICENSE").is_file()
