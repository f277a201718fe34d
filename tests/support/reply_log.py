"""Reading what a reply log wrote, straight from Redis."""

from __future__ import annotations

import json

from parley.replies.log import ReplyLog


async def stored_frames(reply_log: ReplyLog, reply_id: str) -> list[dict[str, object]]:
    """The frames of ``reply_id``'s stream, in order."""
    entries = await reply_log.redis.xrange(reply_log.keys.events(reply_id))
    return [json.loads(fields[b"f"]) for _, fields in entries]
