"""The reply log and its writer against a real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from parley.replies.events import Event
from parley.replies.feed import ReplyFeed
from parley.replies.keys import Keys
from parley.replies.log import ReplyLog
from parley.replies.pipeliner import Pipeliner
from parley.replies.writer import ReplyWriter
from parley.rules import RuleEvent
from parley.storage.redis import connect
from support.storage import StorageURLs


@pytest.fixture
async def redis(storage: StorageURLs) -> AsyncIterator[Redis]:
    client = connect(storage.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def reply_log(redis: Redis) -> ReplyLog:
    keys = Keys(prefix=f"test-{uuid.uuid4().hex[:8]}")
    return ReplyLog(redis, keys, Pipeliner(redis), retention_seconds=600)


async def stored_frames(reply_log: ReplyLog, reply_id: str) -> list[dict[str, object]]:
    entries = await reply_log.redis.xrange(reply_log.keys.events(reply_id))
    return [json.loads(fields[b"f"]) for _, fields in entries]


async def test_text_arriving_during_a_write_is_merged_into_the_next_delta(
    reply_log: ReplyLog,
) -> None:
    feed = ReplyFeed("r1", "u1")
    writer = ReplyWriter(reply_log, feed, "r1")
    pieces = [f"w{i} " for i in range(100)]
    writer.delta(pieces[0])
    await asyncio.sleep(0)  # the first delta's write is now on the wire
    for piece in pieces[1:]:  # all of these arrive before it returns
        writer.delta(piece)
    await writer.drain()
    frames = await stored_frames(reply_log, "r1")
    assert [f["seq"] for f in frames] == [1, 2]
    assert frames[0]["text"] == "w0 "
    assert "".join(str(f["text"]) for f in frames) == "".join(pieces)
    assert await reply_log.text("r1") == "".join(pieces)
    assert [e.json for e in feed.history] == [json.dumps(f, separators=(",", ":")) for f in frames]


async def test_notices_keep_their_place_between_deltas(reply_log: ReplyLog) -> None:
    writer = ReplyWriter(reply_log, ReplyFeed("r2", "u1"), "r2")
    writer.delta("before ")
    await writer.drain()
    writer.notice(RuleEvent("guaranteed_returns", "replaced", "potential returns"))
    writer.delta("after")
    await writer.drain()
    frames = await stored_frames(reply_log, "r2")
    assert [(f["type"], f.get("seq")) for f in frames] == [
        ("delta", 1),
        ("notice", None),
        ("delta", 2),
    ]
    state = await reply_log.redis.hget(reply_log.keys.state("r2"), "last_seq")
    assert state == b"2"


async def test_local_followers_get_backlog_then_live_events_exactly_once(
    reply_log: ReplyLog,
) -> None:
    feed = ReplyFeed("r3", "u1")
    writer = ReplyWriter(reply_log, feed, "r3")
    writer.delta("one ")
    await writer.drain()
    events = feed.follow(after_seq=0)
    seen: list[Event] = [await anext(events)]  # the backlog; now subscribed to live ones
    writer.delta("two")
    await writer.drain()
    feed.publish([Event.of({"type": "done", "reply_id": "r3", "status": "complete"}, at=2)])
    seen += [event async for event in events]
    assert [e.kind for e in seen] == ["delta", "delta", "done"]
    assert "".join(e.text for e in seen) == "one two"


async def test_a_failed_write_stops_the_writer(storage: StorageURLs) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    reply_log = ReplyLog(dead, Keys(), Pipeliner(dead), retention_seconds=600)
    writer = ReplyWriter(reply_log, ReplyFeed("r4", "u1"), "r4")
    writer.delta("lost?")
    with pytest.raises(RedisConnectionError):
        await writer.drain()
    with pytest.raises(RedisConnectionError):
        writer.delta("more")
    assert writer.text == "lost?"  # still stored to Postgres by the task
    await dead.aclose()


async def test_pipeliner_sends_concurrent_commands_together(redis: Redis) -> None:
    pipeliner = Pipeliner(redis)
    key = f"test-pipeliner-{uuid.uuid4().hex}"
    results = await asyncio.gather(
        *[pipeliner.execute(lambda pipe, i=i: pipe.rpush(key, i)) for i in range(50)]
    )
    assert sorted(r[0] for r in results) == list(range(1, 51))
    assert await redis.lrange(key, 0, -1) == [str(i).encode() for i in range(50)]
    await redis.delete(key)
