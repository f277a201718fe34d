"""The reply log and its writer against a real Redis."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from parley.protocol import DoneFrame, ReplyStatus, Usage
from parley.replies.appender import Appender
from parley.replies.events import Event
from parley.replies.feed import ReplyFeed
from parley.replies.log import ReplyLog
from parley.replies.writer import ReplyWriter
from parley.rules import RuleEvent
from parley.storage.keys import Keys
from parley.storage.redis import connect
from support.private import PrivateRedis
from support.reply_log import stored_frames
from support.storage import StorageURLs

USAGE: Usage = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "cost_usd": 0.0,
    "estimated": False,
}


@pytest.fixture
def reply_log(redis: Redis) -> ReplyLog:
    keys = Keys(prefix=f"test-{uuid.uuid4().hex[:8]}")
    return ReplyLog(redis, keys, Appender(redis, interval=0), retention_seconds=600)


async def test_text_arriving_before_the_batch_leaves_is_merged_into_one_delta(
    reply_log: ReplyLog,
) -> None:
    feed = ReplyFeed("r1", "u1")
    writer = ReplyWriter(reply_log, feed, "r1")
    pieces = [f"w{i} " for i in range(100)]
    for piece in pieces:
        writer.delta(piece)
    assert feed.history == []  # followers see nothing Redis does not have yet
    await writer.drain()
    frames = await stored_frames(reply_log, "r1")
    assert [(f["seq"], f["text"]) for f in frames] == [(1, "".join(pieces))]
    assert [e.json for e in feed.history] == [json.dumps(f, separators=(",", ":")) for f in frames]
    assert await reply_log.written("r1") == ("".join(pieces), 1)


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
    assert await reply_log.last_seq("r2") == 2
    assert await reply_log.written("r2") == ("before after", 2)


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
    done = DoneFrame(reply_id="r3", message_id=None, status=ReplyStatus.COMPLETE, usage=USAGE)
    feed.publish([Event.of(done, at=2)])
    seen += [event async for event in events]
    assert [e.kind for e in seen] == ["delta", "delta", "done"]
    assert "".join(e.frame["text"] for e in seen if e.kind == "delta") == "one two"


async def test_a_failed_write_stops_the_writer(storage: StorageURLs) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    reply_log = ReplyLog(dead, Keys(), Appender(dead, interval=0), retention_seconds=600)
    writer = ReplyWriter(reply_log, ReplyFeed("r4", "u1"), "r4")
    writer.delta("lost?")
    with pytest.raises(RedisConnectionError):
        await writer.drain()
    with pytest.raises(RedisConnectionError):
        writer.delta("more")
    assert writer.text == "lost?"  # still stored to Postgres by the task
    await dead.aclose()


async def test_frames_of_concurrent_replies_are_written_in_one_script_call(
    private_redis: PrivateRedis,
) -> None:
    redis = connect(private_redis.url)
    keys = Keys()
    reply_log = ReplyLog(redis, keys, Appender(redis, interval=0), retention_seconds=600)
    warm_up = ReplyWriter(reply_log, ReplyFeed("w", "u1"), "w")
    warm_up.delta("loads the script into this Redis")
    await warm_up.drain()
    writers = [ReplyWriter(reply_log, ReplyFeed(f"r{i}", "u1"), f"r{i}") for i in range(50)]
    before = await script_calls(redis)
    for i, writer in enumerate(writers):
        writer.delta(f"text {i}")
    for writer in writers:
        await writer.drain()
    assert await script_calls(redis) == before + 1
    for i in range(50):
        assert await reply_log.written(f"r{i}") == (f"text {i}", 1)
    await redis.aclose()


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


async def test_after_a_failed_batch_nothing_more_of_the_reply_is_written(
    reply_log: ReplyLog,
) -> None:
    writer = ReplyWriter(reply_log, ReplyFeed("r5", "u1"), "r5")
    writer.delta("one ")
    lost = writer.take()  # as the appender does when a batch leaves
    writer.delta("two")  # arrives while that batch is on its way
    writer.written(lost, ConnectionError("Redis went away"))
    assert writer.take() == []  # "two" after a hole would break the seq order
    with pytest.raises(ConnectionError):
        writer.delta("three")
    with pytest.raises(ConnectionError):
        await writer.drain()
    assert writer.text == "one two"  # what Postgres gets


async def test_a_batch_that_fails_fails_every_writer_in_it(storage: StorageURLs) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0")
    reply_log = ReplyLog(dead, Keys(), Appender(dead, interval=0), retention_seconds=600)
    writers = [ReplyWriter(reply_log, ReplyFeed(f"r{i}", "u1"), f"r{i}") for i in range(3)]
    for writer in writers:
        writer.delta("lost?")
    for writer in writers:
        with pytest.raises(RedisConnectionError):
            await writer.drain()
    await dead.aclose()


@given(text=st.text(), seq=st.integers(min_value=0, max_value=2**40))
def test_delta_frames_are_exactly_their_json(text: str, seq: int) -> None:
    frame = {"type": "delta", "reply_id": "r-1", "seq": seq, "text": text}
    assert Event.delta("r-1", seq, text).json == json.dumps(
        frame, separators=(",", ":"), ensure_ascii=False
    )
