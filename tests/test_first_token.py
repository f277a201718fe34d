"""What keeps the way to a reply's first token short (docs/performance.md, "First token")."""

from __future__ import annotations

import asyncio
import json
import uuid
from types import MappingProxyType

import pytest
from redis.asyncio import Redis

from parley.knowledge.retrieval import first_query, search_queries
from parley.llm.base import ChatMessage, ToolSpec
from parley.llm.toolwire import json_value, spec_json, spec_schema
from parley.protocol import SourcesFrame
from parley.replies.appender import Appender
from parley.replies.feed import ReplyFeed
from parley.replies.log import ReplyLog
from parley.replies.writer import ReplyWriter
from parley.rules import RuleEvent
from parley.storage.keys import Keys
from support.reply_log import stored_frames

# -- held opening frames go with the first text ---------------------------------------------


@pytest.fixture
def reply_log(redis: Redis) -> ReplyLog:
    keys = Keys(prefix=f"test-{uuid.uuid4().hex[:8]}")
    # A long interval: a batch of its own ahead of the text would make the text wait it out.
    return ReplyLog(redis, keys, Appender(redis, interval=5.0), retention_seconds=600)


def sources(reply_id: str) -> SourcesFrame:
    return SourcesFrame(reply_id=reply_id, seq=0, sources=[{"n": 1, "title": "Manual"}])


async def test_held_frames_go_in_the_first_texts_batch(reply_log: ReplyLog) -> None:
    reply_id = str(uuid.uuid4())
    feed = ReplyFeed(reply_id, "u1")
    writer = ReplyWriter(reply_log, feed, reply_id)
    writer.hold()
    writer.notice(RuleEvent("password", "redacted", "input"))
    writer.numbered(sources(reply_id))
    writer.release()
    # The model's first text comes later: give a batch of their own (which
    # the appender would send at once) the time to go, then see none went.
    await asyncio.sleep(0.05)
    assert await stored_frames(reply_log, reply_id) == []
    writer.delta("Hello")
    # The next batch may only leave 5 s after a first one: had the held
    # frames gone on their own, the text would wait that out.
    async with asyncio.timeout(1):
        await writer.drain()
    frames = await stored_frames(reply_log, reply_id)
    assert [(f["type"], f.get("seq")) for f in frames] == [
        ("notice", None),
        ("sources", 1),
        ("delta", 2),
    ]
    assert [event.kind for event in feed.history] == ["notice", "sources", "delta"]


async def test_held_frames_are_written_by_drain_when_no_text_comes(reply_log: ReplyLog) -> None:
    reply_id = str(uuid.uuid4())
    writer = ReplyWriter(reply_log, ReplyFeed(reply_id, "u1"), reply_id)
    writer.hold()
    writer.numbered(sources(reply_id))
    async with asyncio.timeout(1):
        await writer.drain()
    assert [f["type"] for f in await stored_frames(reply_log, reply_id)] == ["sources"]


async def test_after_release_frames_are_sent_at_once(reply_log: ReplyLog) -> None:
    reply_id = str(uuid.uuid4())
    writer = ReplyWriter(reply_log, ReplyFeed(reply_id, "u1"), reply_id)
    writer.hold()
    writer.release()
    writer.notice(RuleEvent("tools", "refused", "no such tool"))  # e.g. a tool step
    async with asyncio.timeout(1):
        await writer.drain()
    assert [f["type"] for f in await stored_frames(reply_log, reply_id)] == ["notice"]


# -- the knowledge search that can start before the history is read ---------------------------


@pytest.mark.parametrize(
    "newest",
    ["What is an ETF?", "  And   bonds? ", "x" * 1500, "How risky are they?", "Is it safe?"],
)
def test_first_query_is_what_search_queries_puts_first_whatever_the_history(newest: str) -> None:
    histories = [
        [],
        [ChatMessage("user", "Tell me about index funds"), ChatMessage("assistant", "…")],
    ]
    early = first_query(newest)
    for history in histories:
        queries = search_queries(history, newest)
        if early is not None:
            assert queries[0] == early
    referring = "they" in newest or " it " in newest
    assert (early is None) == referring


# -- tool specs on the wire, made once per schema ---------------------------------------------


def test_tool_specs_are_the_same_as_uncached_and_made_once() -> None:
    schema = MappingProxyType(
        {"type": "object", "properties": {"q": {"type": "string"}}, "required": ("q",)}
    )
    spec = ToolSpec("search", "Searches.", schema)
    assert spec_schema(spec) == json_value(schema)
    assert spec_schema(ToolSpec("search", "Searches.", schema)) is spec_schema(spec)
    assert json.loads(spec_json(spec)) == {
        "name": "search",
        "description": "Searches.",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
        },
    }
    renamed = ToolSpec("find", "Finds.", schema)  # the text has the name and description
    assert json.loads(spec_json(renamed))["name"] == "find"
    other = ToolSpec("search", "Searches.", {"type": "object", "properties": {}})
    assert json.loads(spec_json(other))["parameters"] == {"type": "object", "properties": {}}
