"""HTTP-level defences: slow request heads, and a rate limiter whose Redis is gone.

Each test runs servers of its own, configured for what it checks.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from conftest import TokenFactory
from support.client import ChatClient
from support.private import PrivateRedis
from support.server import ParleyServer

HEADER_TIMEOUT_SECONDS = 1.5
# Well past the timeout: a server without one keeps the connection this long.
TRICKLE_FOR_SECONDS = HEADER_TIMEOUT_SECONDS + 5


@pytest.fixture(scope="module")
def guarded(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    env = {**server_env, "PARLEY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS)}
    with ParleyServer(env, name="parley-guarded") as instance:
        yield instance


def closed_by_server(connection: socket.socket, wait: float) -> bool:
    """Whether the server closes ``connection`` within ``wait`` seconds (without answering)."""
    connection.settimeout(wait)
    try:
        data = connection.recv(1024)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    assert data == b"", f"the server answered: {data!r}"
    return True


def trickle(server: ParleyServer, head: bytes) -> float | None:
    """Send ``head`` a byte a second; the seconds until the server hung up, if it did."""
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        started = time.monotonic()
        for byte in head:
            if time.monotonic() - started > TRICKLE_FOR_SECONDS:
                return None
            try:
                connection.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            # The pause between bytes is the wait for the server to hang up.
            if closed_by_server(connection, 1.0):
                return time.monotonic() - started
    return None


def test_a_trickled_request_head_is_cut_off(guarded: ParleyServer) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: parley\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    hung_up_after = trickle(guarded, head)
    assert hung_up_after is not None, "the server waited for the trickled head"
    assert hung_up_after < HEADER_TIMEOUT_SECONDS + 1.5


def test_a_connection_that_never_sends_is_closed(guarded: ParleyServer) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as connection:
        assert closed_by_server(connection, HEADER_TIMEOUT_SECONDS + 3)


def test_a_slow_second_request_on_a_kept_alive_connection_is_cut_off(
    guarded: ParleyServer,
) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: parley\r\n\r\n")
        connection.settimeout(5)
        response = b""
        while not response.endswith(b'{"status":"ok"}'):
            chunk = connection.recv(4096)
            assert chunk, f"closed mid-response: {response!r}"
            response += chunk
        assert response.startswith(b"HTTP/1.1 200")
        connection.sendall(b"GET /health HTTP/1.1\r\n")  # ...and the rest never comes
        assert closed_by_server(connection, HEADER_TIMEOUT_SECONDS + 3)


async def test_requests_and_sockets_outliving_the_head_timeout_are_untouched(
    guarded: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(guarded.ws_url, make_token()[1]) as client:
        # A witness connection that sends nothing: once it is closed, the
        # head timeout has passed for the socket too.
        with socket.create_connection(("127.0.0.1", guarded.port)) as witness:
            closed = await asyncio.to_thread(closed_by_server, witness, HEADER_TIMEOUT_SECONDS + 3)
            assert closed
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}
    ready = await asyncio.to_thread(httpx.get, f"{guarded.url}/ready", timeout=10)
    assert ready.status_code == 200


def test_rate_limiter_fails_closed_when_redis_is_gone(
    server_env: dict[str, str], private_redis: PrivateRedis, make_token: TokenFactory
) -> None:
    env = {**server_env, "REDIS_URL": private_redis.url}
    with (
        ParleyServer(env, name="parley-fail-closed") as closed,
        ParleyServer(
            {**env, "PARLEY_RATE_LIMIT_FAIL_OPEN": "true"}, name="parley-fail-open"
        ) as opened,
    ):
        headers = {"Authorization": f"Bearer {make_token()[1]}"}
        assert httpx.get(f"{closed.url}/v1/agents", headers=headers).status_code == 200
        private_redis.stop()

        refused = httpx.get(f"{closed.url}/v1/agents", headers=headers, timeout=10)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "cannot be checked" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "5"
        assert "rate limits cannot be checked" in closed.log()
        assert "refusing REST requests" in closed.log()

        allowed = httpx.get(f"{opened.url}/v1/agents", headers=headers, timeout=10)
        assert allowed.status_code == 200
        assert "allowing REST requests" in opened.log()
