"""Shared rules for turning vendor failures into :class:`ProviderError`.

The question "is a retry worth it?" has one answer for both vendors, and
error text must never leak a credential into logs or the ``llm_usage`` table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# 408/409/425 are "try again" statuses; 429 is rate limiting; 5xx includes
# Anthropic's 529 "overloaded".
_TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})

# Vendors sometimes echo (part of) the key they rejected; scrub anything that
# looks like one even when it is not the key we were configured with.
_KEY_PATTERN = re.compile(r"\b(sk|sk-ant|sk-proj|key)-[A-Za-z0-9_\-*.]{6,}")

MAX_ERROR_CHARS = 500


def is_transient_status(status: int) -> bool:
    return status in _TRANSIENT_STATUSES or status >= 500


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Remove configured secrets and key-shaped strings, and bound the length."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _KEY_PATTERN.sub("[redacted]", text)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def vendor_message(body: object, fallback: str) -> str:
    """The human-readable ``error.message`` both vendors put in JSON error bodies."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message")
            if isinstance(message, str) and message:
                return message
    return fallback
