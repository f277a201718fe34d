"""The handoff webhook's message: its JSON body and its signature.

The body is fixed when the handoff happens and sent byte for byte on every
attempt. Each attempt is signed over ``<unix time>.<body>`` with
HMAC-SHA256 and the shared secret, in one header::

    Parley-Signature: t=1795000000,v1=5f8c…

so a receiver can check that the message is Parley's and recent (reject a
``t`` far from its clock: a captured request cannot be replayed later).
:func:`verify` is the reference check receivers can copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import quote

from parley.operators.store import OpenedHandoff

SIGNATURE_HEADER = "Parley-Signature"
EVENT = "handoff.requested"
DEFAULT_TOLERANCE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where handoffs are reported: configured by the operator, never by a request."""

    url: str
    secret: str
    console_url: str  # the operator console; a conversation's link adds its id


def body(handoff: OpenedHandoff, target: WebhookTarget) -> str:
    request = handoff.request
    conversation_id = str(request.conversation_id)
    payload = {
        "event": EVENT,
        "handoff_id": handoff.id,
        "conversation_id": conversation_id,
        "user_id": handoff.owner_id,
        "agent": handoff.agent_id,
        "trigger": request.trigger,
        "rule": request.rule,
        "reason": request.reason,
        "console_url": f"{target.console_url}#conversation={quote(conversation_id)}",
        "time": handoff.requested_at.isoformat(),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signature(secret: str, payload: str, timestamp: int) -> str:
    """The ``Parley-Signature`` header's value for ``payload`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    payload: str | bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` is a valid, recent signature of ``payload``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    text = payload.decode() if isinstance(payload, bytes) else payload
    expected = signature(secret, text, timestamp).rpartition("v1=")[2]
    return hmac.compare_digest(expected, parts.get("v1", ""))
