"""Pieces of the operations features on their own: webhook signatures, retry delays,
settings."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from parley.config import ConfigurationError, load_settings
from parley.operators.deliveries import MAX_DELAY_SECONDS, RetryPolicy
from parley.operators.store import HandoffRequest, OpenedHandoff
from parley.operators.webhook import WebhookTarget, body, signature, verify

SECRET = "a-webhook-secret-of-some-length"


def test_a_signature_is_hmac_sha256_over_time_dot_body() -> None:
    header = signature(SECRET, '{"a":1}', 1_795_000_000)
    expected = hmac.new(SECRET.encode(), b'1795000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1795000000,v1={expected}"
    assert verify(SECRET, b'{"a":1}', header, now=1_795_000_100)


@pytest.mark.parametrize(
    ("payload", "secret", "now"),
    [
        ('{"a":2}', SECRET, 1_795_000_000),  # another body
        ('{"a":1}', "another-secret-entirely", 1_795_000_000),  # another key
        ('{"a":1}', SECRET, 1_795_000_000 + 301),  # too old: a replay
    ],
)
def test_verify_refuses_a_forged_or_stale_signature(payload: str, secret: str, now: int) -> None:
    header = signature(SECRET, '{"a":1}', 1_795_000_000)
    assert not verify(secret, payload, header, now=now)
    assert not verify(SECRET, '{"a":1}', "v1=deadbeef", now=now)


def test_the_body_links_the_console_and_says_what_happened() -> None:
    conversation_id = uuid4()
    handoff = OpenedHandoff(
        7,
        HandoffRequest(conversation_id, "tool", "needs a refund", rule="handoff_to_human"),
        "alice",
        "agent_gamma",
        datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
    )
    target = WebhookTarget("https://hooks.example/parley", SECRET, "https://chat.example/console")
    assert body(handoff, target) == (
        '{"event":"handoff.requested","handoff_id":7,'
        f'"conversation_id":"{conversation_id}","user_id":"alice","agent":"agent_gamma",'
        '"trigger":"tool","rule":"handoff_to_human","reason":"needs a refund",'
        f'"console_url":"https://chat.example/console#conversation={conversation_id}",'
        '"time":"2026-11-21T12:00:00+00:00"}'
    )


def test_retries_back_off_exponentially_up_to_an_hour() -> None:
    policy = RetryPolicy(max_attempts=20, base_delay=5)
    assert [policy.delay(attempt) for attempt in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert policy.delay(19) == MAX_DELAY_SECONDS


def test_a_webhook_needs_its_secret_and_a_web_url() -> None:
    with pytest.raises(ConfigurationError) as missing:
        load_settings(handoff_webhook_url="https://hooks.example/parley", model="demo:echo")
    assert missing.value.problems[0].startswith("PARLEY_HANDOFF_WEBHOOK_SECRET:")
    with pytest.raises(ConfigurationError) as wrong:
        load_settings(
            handoff_webhook_url="ftp://hooks.example",
            handoff_webhook_secret=SECRET,
            model="demo:echo",
        )
    assert wrong.value.problems == [
        "PARLEY_HANDOFF_WEBHOOK_URL: must be an http:// or https:// URL"
    ]
    settings = load_settings(
        handoff_webhook_url="https://hooks.example/parley/",
        handoff_webhook_secret=SECRET,
        public_url="https://chat.example/",
        dev_admins="Dana, Sam",
        model="demo:echo",
    )
    assert settings.handoff_webhook_url == "https://hooks.example/parley"
    assert settings.public_base_url == "https://chat.example"
    assert settings.dev_admins == ["Dana", "Sam"]
