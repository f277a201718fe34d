"""Reading a vendor's Server-Sent Events stream as JSON objects.

The SDKs' own stream classes build a pydantic model for every chunk, which
cost about twice as much CPU per token as the rest of Parley's relay put
together. The providers still use the SDKs to build, send and authenticate
requests and to map HTTP errors, but read the event stream themselves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

DONE = "[DONE]"  # OpenAI's end-of-stream sentinel


async def sse_json(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """Each event's ``data`` decoded as JSON, until OpenAI's ``[DONE]``.

    Both vendors send every event's data on one line, so each ``data:`` line
    is one event; ``event:`` lines repeat the data's own ``type`` and are skipped.
    """
    async for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[6:] if line.startswith("data: ") else line[5:]
        if data == DONE:
            return
        decoded = json.loads(data)
        if isinstance(decoded, dict):
            yield decoded
