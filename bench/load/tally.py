"""What a stream's frames and events say, turned into a :class:`StreamResult`.

Parley's frames (WebSocket and SSE alike) carry text, ``accepted``, ``done``
and errors; the vendors' events (the baseline) carry text and an end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.common import StreamResult, TokenClock


class StreamError(Exception):
    """A stream that could not be timed; its message becomes the result's error."""


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    return text[:300]


@dataclass
class ParleyTally:
    """What a Parley reply's frames told us besides its text."""

    accepted: float | None = None
    done: float | None = None
    status: str = ""
    error: str | None = None


def on_parley_frame(frame: dict[str, Any], clock: TokenClock, tally: ParleyTally) -> bool:
    """Record one WebSocket or SSE frame; ``True`` once the reply is over."""
    now = time.perf_counter()
    kind = frame.get("type")
    if kind == "delta":
        clock.feed(str(frame.get("text", "")), now)
    elif kind == "accepted":
        tally.accepted = now
    elif kind == "done":
        tally.done = now
        tally.status = str(frame.get("status"))
        return True
    elif kind in ("error", "resync"):
        tally.error = f"{kind}: {frame.get('code', '')} {frame.get('message', '')}".strip()
        # A reply's own error is followed by its done; a refused message gets nothing more.
        return kind == "resync" or "reply_id" not in frame
    return False


def parley_result(clock: TokenClock, tally: ParleyTally) -> StreamResult:
    last = clock.arrivals[-1] if clock.arrivals else None
    lag = 1000 * (tally.done - last) if tally.done is not None and last is not None else None
    accepted = 1000 * (tally.accepted - clock.started) if tally.accepted is not None else None
    result = clock.result(
        accepted=None if accepted is None else round(accepted, 3),
        done_lag=None if lag is None else round(lag, 3),
        status=tally.status,
        error=tally.error,
    )
    if result.error is None and result.status != "complete":
        result.error = f"status {result.status or 'missing'}"
    return result


def vendor_text(kind: str, event: dict[str, Any]) -> tuple[str, bool]:
    """The text in one OpenAI or Anthropic stream event, and whether the stream ended."""
    if kind == "openai":
        text = "".join(
            str((choice.get("delta") or {}).get("content") or "")
            for choice in event.get("choices", [])
        )
        return text, False
    if event.get("type") == "content_block_delta":
        return str(event["delta"].get("text", "")), False
    return "", event.get("type") == "message_stop"
