"""Shared rules for turning vendor failures into :class:`ProviderError`.

The question "is a retry worth it?" has one answer for both vendors, and
error text must never leak a credential into logs or the ``llm_usage`` table.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime

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


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the vendor asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` is delta-seconds or an HTTP date (RFC 9110 10.2.3);
    OpenAI and Azure also send ``retry-after-ms``, which is finer and wins.
    Unparseable values are ignored: they cannot be honoured anyway.
    """
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; the parser leaves "-0000" naive
        return None
    wall = time.time() if now is None else now
    return max(0.0, moment.timestamp() - wall)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
