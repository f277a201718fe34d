"""The handoff webhook against a real receiver: signed, retried with backoff, logged."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from conftest import TokenFactory
from support.client import ChatClient
from support.fake_llm import FakeLLM, Script
from support.operations import bearer
from support.server import ParleyServer
from support.webhook_receiver import Received, WebhookReceiver

SECRET = "webhook-secret-for-the-tests-0123456789"
PUBLIC_URL = "https://parley.example.test"
ATTEMPTS = 4


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    instance = WebhookReceiver().start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def hooked(server_env: dict[str, str], receiver: WebhookReceiver) -> Iterator[ParleyServer]:
    """An instance that reports handoffs to ``receiver``, retrying quickly."""
    env = {
        **server_env,
        "PARLEY_HANDOFF_WEBHOOK_URL": receiver.url,
        "PARLEY_HANDOFF_WEBHOOK_SECRET": SECRET,
        "PARLEY_HANDOFF_WEBHOOK_ATTEMPTS": str(ATTEMPTS),
        "PARLEY_HANDOFF_WEBHOOK_RETRY_SECONDS": "0.05",
        "PARLEY_PUBLIC_URL": PUBLIC_URL,
    }
    with ParleyServer(env, name="parley-hooked") as instance:
        yield instance


@pytest.fixture
async def admin_http(
    hooked: ParleyServer, make_token: TokenFactory
) -> AsyncIterator[httpx.AsyncClient]:
    headers = bearer(make_token(admin=True)[1])
    async with httpx.AsyncClient(base_url=hooked.url, headers=headers, timeout=30) as client:
        yield client


def signed_by_parley(received: Received) -> bool:
    """The receiver's side: HMAC-SHA256 over ``t.body`` with the shared secret, recent."""
    fields = dict(part.split("=", 1) for part in received.headers["parley-signature"].split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(
        SECRET.encode(), str(timestamp).encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - timestamp) < 300


async def eventually(read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]) -> Any:
    """Read until ``done`` (the server records an attempt just after answering it)."""
    deadline = time.monotonic() + 20
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)  # polling a stored state, not synchronising with it


async def delivery_for(http: httpx.AsyncClient, conversation_id: str) -> dict[str, Any] | None:
    response = await http.get("/v1/admin/webhooks/deliveries")
    assert response.status_code == 200, response.text
    found = [d for d in response.json()["deliveries"] if d["conversation_id"] == conversation_id]
    return found[0] if found else None


async def test_a_handoff_is_signed_and_retried_until_delivered(
    hooked: ParleyServer,
    receiver: WebhookReceiver,
    fake: FakeLLM,
    make_token: TokenFactory,
    admin_http: httpx.AsyncClient,
) -> None:
    receiver.reset(failures=2)
    fake.enqueue(Script(chunks=["Let us secure your account."]))
    user_id, token = make_token()
    async with await ChatClient.connect(hooked.ws_url, token) as client:
        session = await client.start(agent="agent_gamma")
        reply = await client.ask("My laptop was stolen and my account hacked")
        assert reply.done is not None and reply.done["status"] == "complete"
    conversation_id = session["conversation_id"]

    received = await receiver.wait_for(3)
    assert [r.answered for r in received] == [503, 503, 200]
    assert all(signed_by_parley(r) for r in received)
    assert len({r.body for r in received}) == 1  # the same bytes every time
    assert [r.headers["parley-attempt"] for r in received] == ["1", "2", "3"]
    assert received[0].headers["content-type"] == "application/json"
    body = json.loads(received[0].body)
    assert body["event"] == "handoff.requested"
    assert (body["conversation_id"], body["user_id"], body["agent"]) == (
        conversation_id,
        user_id,
        "agent_gamma",
    )
    assert (body["trigger"], body["rule"], body["reason"]) == (
        "rule",
        "security_incident",
        "possible security incident",
    )
    assert body["console_url"] == f"{PUBLIC_URL}/console#conversation={conversation_id}"
    assert body["time"]

    delivery = await eventually(
        lambda: delivery_for(admin_http, conversation_id),
        lambda found: found is not None and found["status"] == "delivered",
    )
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [503, 503, 200]
    assert delivery["payload"] == body
    assert delivery["url"] == receiver.url


async def test_a_receiver_that_keeps_failing_gets_a_bounded_number_of_attempts(
    hooked: ParleyServer,
    receiver: WebhookReceiver,
    make_token: TokenFactory,
    admin_http: httpx.AsyncClient,
) -> None:
    receiver.reset(failures=1000)
    _, token = make_token()
    async with httpx.AsyncClient(base_url=hooked.url, headers=bearer(token)) as http:
        created = await http.post(
            "/v1/chat", json={"agent": "agent_gamma", "message": "Hello"}, timeout=30
        )
        conversation_id = created.json()["conversation_id"]
        asked = await http.post(
            f"/v1/conversations/{conversation_id}/handoff", json={"reason": "call me back"}
        )
        assert asked.json()["handoff"] == {"state": "waiting"}
    received = await receiver.wait_for(ATTEMPTS)
    assert all(signed_by_parley(r) for r in received)
    body = json.loads(received[0].body)
    assert (body["trigger"], body["reason"]) == ("user", "call me back")
    delivery = await eventually(
        lambda: delivery_for(admin_http, conversation_id),
        lambda found: found is not None and found["status"] == "failed",
    )
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == ATTEMPTS
    assert [a["status_code"] for a in delivery["attempt_log"]] == [503] * ATTEMPTS
    assert delivery["last_error"] == "HTTP 503"
    # Backoff: attempt k+1 comes at least 0.05 s * 2**(k-1) after attempt k.
    times = [datetime.fromisoformat(a["at"]) for a in delivery["attempt_log"]]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.05 * 2**k for k, gap in enumerate(gaps)), gaps


async def test_deliveries_wait_in_postgres_for_any_instance(
    hooked: ParleyServer,
    receiver: WebhookReceiver,
    make_token: TokenFactory,
    admin_http: httpx.AsyncClient,
    db: Any,
) -> None:
    """A delivery left pending (its instance died before sending it) is picked up."""
    receiver.reset()
    body = json.dumps({"event": "handoff.requested", "conversation_id": str(uuid.uuid4())})
    delivery_id = await db.fetchval(
        "INSERT INTO webhook_deliveries (url, body) VALUES ($1, $2) RETURNING id",
        receiver.url,
        body,
    )
    [received] = await receiver.wait_for(1)
    assert received.body.decode() == body
    assert received.headers["parley-delivery"] == str(delivery_id)
    assert signed_by_parley(received)
