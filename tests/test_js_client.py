"""The JavaScript client (clients/js), tested in Node against a real Parley server.

Node's test runner runs clients/js/test/*.test.mjs; they script the fake
vendor and mint tokens through :class:`support.fake_control.FakeControl`.
CI has Node: without it these tests fail rather than skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx

from conftest import TokenFactory
from support.fake_control import FakeControl
from support.fake_llm import FakeLLM
from support.server import ParleyServer

CLIENT = Path(__file__).resolve().parents[1] / "clients" / "js"
NODE_TIMEOUT_SECONDS = 240


def node() -> list[str]:
    """Node, with the global WebSocket (a flag before Node 22)."""
    found = shutil.which("node")
    assert found is not None, "Node (>= 20) is needed for the JavaScript client's tests"
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    assert major >= 20, f"Node {version.stdout.strip()} is too old for the client (>= 20)"
    return [found, "--experimental-websocket"] if major < 22 else [found]


def test_node_tests_of_the_javascript_client_pass(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    tests = sorted(str(path) for path in (CLIENT / "test").glob("*.test.mjs"))
    assert tests
    user_id, token = make_token()
    with FakeControl(fake, make_token) as control:
        env = {
            **os.environ,
            "PARLEY_URL": server.url,
            "PARLEY_WS_URL": server.ws_url,
            "PARLEY_TOKEN": token,
            "PARLEY_USER": user_id,
            "PARLEY_FAKE_CONTROL": control.url,
        }
        finished = subprocess.run(
            [*node(), "--test", "--test-concurrency=1", *tests],
            cwd=CLIENT,
            env=env,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_SECONDS,
        )
    output = f"{finished.stdout}\n{finished.stderr}"
    assert finished.returncode == 0, output
    assert "# fail 0" in finished.stdout, output


def test_the_server_serves_the_client_module_as_it_is(server: ParleyServer) -> None:
    for name in ("parley-client.js", "reply.js"):
        response = httpx.get(f"{server.url}/static/client/{name}")
        assert response.status_code == 200
        assert "javascript" in response.headers["content-type"]
        assert response.content == (CLIENT / "src" / name).read_bytes()
        # The widget imports it from other sites: module scripts load in CORS mode.
        assert response.headers["access-control-allow-origin"] == "*"
    assert httpx.get(f"{server.url}/static/client/nope.js").status_code == 404
    assert httpx.get(f"{server.url}/static/js/app.js").status_code == 200  # /static still works
