"""Reading a vendor's Server-Sent Events stream as JSON objects.

Only what OpenAI and Anthropic actually send is handled: every event's data
on one ``data:`` line. Bytes go straight to ``json.loads``, which skips a
decode-then-parse round trip per token on the relay's hottest path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

DONE = b"[DONE]"  # OpenAI's end-of-stream sentinel


async def sse_json(lines: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Each event's ``data`` decoded as JSON, until OpenAI's ``[DONE]``.

    ``event:`` lines repeat the data's own ``type``, and comments keep idle
    connections alive; both are skipped. Raises ``ValueError`` on bad JSON.
    """
    async for line in lines:
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()  # the optional space, and the \r of \r\n line ends
        if data == DONE:
            return
        if data:
            decoded = json.loads(data)
            if isinstance(decoded, dict):
                yield decoded
