"""Budgets and usage rows that hold under races, runaway upstreams and outages."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from conftest import TIGHT_BUDGET, TokenFactory
from support.client import ChatClient, Reply
from support.fake_llm import FakeLLM, Script
from support.private import PrivateRedis
from support.server import ParleyServer

TIGHT_REPLY_CAP = 500  # tight_budget's max_reply_tokens (tests/conftest.py)


async def turn(server: ParleyServer, token: str, text: str) -> Reply | str:
    """One turn in a new conversation: the reply, or the code it was refused with."""
    async with await ChatClient.connect(server.ws_url, token) as client:
        await client.start(agent="agent_budget")
        await client.send({"type": "message", "client_id": str(uuid.uuid4()), "text": text})
        first = await client.receive()
        if first["type"] == "error":
            return str(first["code"])
        assert first["type"] == "accepted", first
        return await client.reply(first["reply_id"])


async def test_parallel_turns_against_an_upstream_that_ignores_max_tokens(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    runaway = [" word"] * (4 * TIGHT_REPLY_CAP)  # four times the cap, ignoring max_tokens
    for _ in range(24):
        fake.enqueue(Script(chunks=runaway, completion_tokens=len(runaway)))
    user, token = make_token()
    outcomes = await asyncio.gather(*(turn(server, token, f"turn {n}") for n in range(24)))
    replies = [o for o in outcomes if isinstance(o, Reply)]
    refused = [o for o in outcomes if isinstance(o, str)]
    assert replies and refused and set(refused) == {"budget_exceeded"}
    for reply in replies:
        assert reply.done is not None and reply.done["status"] == "complete"
        assert any(n["action"] == "truncated" for n in reply.notices)
    rows = await db.fetch(
        "SELECT prompt_tokens, completion_tokens, estimated FROM llm_usage WHERE user_id = $1",
        user,
    )
    assert len(rows) == len(replies)  # one row per upstream call
    assert all(row["completion_tokens"] <= TIGHT_REPLY_CAP for row in rows)
    spent = sum(row["prompt_tokens"] + row["completion_tokens"] for row in rows)
    # Each admitted turn held its worst case before it started: the day's
    # total cannot pass the budget, however many turns raced for it.
    assert spent <= TIGHT_BUDGET


async def test_redis_dying_mid_reply_still_records_the_call(
    private_redis_server: ParleyServer,
    private_redis: PrivateRedis,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
) -> None:
    fake.enqueue(Script(chunks=[f" piece{n}" for n in range(200)], delay=0.05))
    async with await ChatClient.connect(private_redis_server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("tell me a long story")
        await client.reply(accepted["reply_id"], until_seq=1)
        private_redis.stop()
    reply_id = uuid.UUID(accepted["reply_id"])
    status = await _final_status(db, reply_id)
    assert status == "failed"
    rows = await db.fetch(
        "SELECT u.status, u.estimated, u.completion_tokens FROM llm_usage u"
        " JOIN messages m ON m.id = u.message_id WHERE m.reply_id = $1",
        reply_id,
    )
    [row] = rows  # the call the reply was reading when Redis went away
    assert row["status"] == "failed" and row["estimated"] is True
    assert row["completion_tokens"] > 0


async def _final_status(db: asyncpg.Connection, reply_id: uuid.UUID) -> str:
    """The reply's stored status once it is no longer streaming (polled, with a deadline)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status: str = await db.fetchval("SELECT status FROM messages WHERE reply_id = $1", reply_id)
        if status != "streaming":
            return status
        await asyncio.sleep(0.05)  # polling stored state, not synchronising
    raise AssertionError("the reply was never finished")
