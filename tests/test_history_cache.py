"""The cached history a reply is asked with (parley/replies/memory.py), read as the
reply opens and written as it closes, against the real Redis and Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest
from redis.asyncio import Redis

from parley.llm.base import ChatMessage
from parley.protocol import ReplyStatus
from parley.replies.appender import Appender
from parley.replies.events import Event
from parley.replies.log import ReplyLog
from parley.replies.memory import EMPTY, FORGET, ConversationMemory, HistoryUpdate
from parley.replies.task import done_frame
from parley.storage.conversations import ConversationStore, NewTurn
from parley.storage.keys import Keys, new_reply_id
from parley.storage.ledger import ReplyTotals
from support.knowledge import migrated_database
from support.storage import StorageURLs

SIZE = 4


@pytest.fixture
async def pool(storage: StorageURLs) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_database(storage.database_url) as pool:
        yield pool


@pytest.fixture
def keys() -> Keys:
    return Keys(prefix=f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def memory(redis: Redis, keys: Keys, pool: asyncpg.Pool) -> ConversationMemory:
    return ConversationMemory(redis, keys, ConversationStore(pool), size=SIZE)


@pytest.fixture
def reply_log(redis: Redis, keys: Keys) -> ReplyLog:
    return ReplyLog(redis, keys, Appender(redis, interval=0), retention_seconds=600)


async def new_conversation(pool: asyncpg.Pool) -> UUID:
    store = ConversationStore(pool)
    conversation = await store.store(store.draft("u1", "a", "p", "r"), "U")
    return conversation.id


async def store_turn(pool: asyncpg.Pool, conversation_id: UUID, text: str) -> None:
    """A turn in Postgres only, its reply complete: what the record says."""
    store = ConversationStore(pool)
    reply_id = uuid.uuid4()
    turn = NewTurn(conversation_id, f"c-{text}", text, "accepted", False, reply_id, "v1")
    assert await store.insert_turn(turn) is not None
    await pool.execute(
        "UPDATE messages SET content = $2, status = 'complete' WHERE reply_id = $1",
        reply_id,
        f"re: {text}",
    )


async def turn(reply_log: ReplyLog, conversation_id: UUID, update: HistoryUpdate) -> list[bytes]:
    """Open a reply (reading the cache) and close it with ``update``; what it read."""
    reply_id = new_reply_id(conversation_id)
    opening = await reply_log.open(
        reply_id=reply_id,
        user_id="u1",
        conversation_id=str(conversation_id),
        client_id=reply_id,
        agent_id="a",
        owner="here",
        lease_ms=10_000,
        read_history=True,
    )
    assert opening.opened
    done = done_frame(reply_id, None, ReplyStatus.COMPLETE, ReplyTotals.of(()))
    await reply_log.close(reply_id, str(conversation_id), Event.of(done, at=1), history=update)
    return opening.cached_history


def said(n: int) -> list[ChatMessage]:
    return [ChatMessage("user", f"q{n}"), ChatMessage("assistant", f"a{n}")]


async def test_a_new_conversation_is_cached_as_empty_and_its_first_reply_asks_no_one_else(
    pool: asyncpg.Pool, memory: ConversationMemory, reply_log: ReplyLog
) -> None:
    conversation_id = await new_conversation(pool)
    await memory.started(conversation_id)
    # Were Postgres asked, it would answer with this turn: the cache answers instead.
    await store_turn(pool, conversation_id, "only in the record")
    cached = await turn(reply_log, conversation_id, memory.after_turn(said(1)))
    assert cached == [EMPTY.encode()]
    assert await memory.recent(conversation_id, cached) == []
    assert await memory.recent(conversation_id) == said(1)


async def test_closing_replies_append_their_turns_and_keep_the_newest(
    pool: asyncpg.Pool, memory: ConversationMemory, reply_log: ReplyLog, redis: Redis, keys: Keys
) -> None:
    conversation_id = await new_conversation(pool)
    await memory.started(conversation_id)
    seen = []
    for n in range(1, 5):
        cached = await turn(reply_log, conversation_id, memory.after_turn(said(n)))
        seen.append(await memory.recent(conversation_id, cached))
    assert seen == [[], said(1), said(1) + said(2), said(2) + said(3)]
    assert await memory.recent(conversation_id) == said(3) + said(4)
    # Full: the empty marker is gone, and no more than SIZE entries are kept.
    assert await redis.llen(keys.history(str(conversation_id))) == SIZE


async def test_a_reply_that_does_not_know_its_turn_drops_the_cache_for_the_record(
    pool: asyncpg.Pool, memory: ConversationMemory, reply_log: ReplyLog, redis: Redis, keys: Keys
) -> None:
    conversation_id = await new_conversation(pool)
    await memory.started(conversation_id)
    await turn(reply_log, conversation_id, memory.after_turn(said(1)))
    await store_turn(pool, conversation_id, "q2")
    await turn(reply_log, conversation_id, FORGET)
    assert not await redis.exists(keys.history(str(conversation_id)))
    cached = await turn(reply_log, conversation_id, memory.after_turn(said(3)))
    assert cached == []  # not cached: the opening says so, and the record is read
    rebuilt = [ChatMessage("user", "q2"), ChatMessage("assistant", "re: q2")]
    assert await memory.recent(conversation_id, cached) == rebuilt
    assert await memory.recent(conversation_id) == rebuilt


async def test_a_conversation_with_nothing_stored_is_cached_as_empty_once_read(
    pool: asyncpg.Pool, memory: ConversationMemory, reply_log: ReplyLog
) -> None:
    conversation_id = await new_conversation(pool)
    assert await memory.recent(conversation_id) == []  # from Postgres
    cached = await turn(reply_log, conversation_id, memory.after_turn(said(1)))
    assert cached == [EMPTY.encode()]
    assert await memory.recent(conversation_id) == said(1)


async def test_a_reply_that_does_not_open_reads_nothing(
    pool: asyncpg.Pool, memory: ConversationMemory, reply_log: ReplyLog
) -> None:
    conversation_id = await new_conversation(pool)
    await memory.started(conversation_id)
    common = {
        "user_id": "u1",
        "conversation_id": str(conversation_id),
        "agent_id": "a",
        "owner": "here",
        "lease_ms": 10_000,
        "read_history": True,
    }
    first = await reply_log.open(reply_id=new_reply_id(conversation_id), client_id="c1", **common)
    busy = await reply_log.open(reply_id=new_reply_id(conversation_id), client_id="c2", **common)
    assert first.opened and first.cached_history == [EMPTY.encode()]
    assert not busy.opened and busy.cached_history == []
