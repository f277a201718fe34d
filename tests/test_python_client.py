"""``parley.client.ParleyClient`` against real servers: replies, resume after drops, refusals."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from conftest import TokenFactory
from parley.client import Backoff, ParleyClient, ParleyError, Reply
from parley.protocol import (
    AcceptedFrame,
    DeltaFrame,
    DoneFrame,
    ReplyStatus,
    ServerFrame,
    ToolCallFrame,
    ToolResultFrame,
)
from support.fake_llm import FakeLLM, Script
from support.proxy import CuttableProxy
from support.server import ParleyServer

QUICK = Backoff(base=0.02, cap=0.2)


async def stored(db: asyncpg.Connection, reply_id: str | None) -> asyncpg.Record:
    assert reply_id is not None
    row = await db.fetchrow("SELECT * FROM messages WHERE reply_id = $1", uuid.UUID(reply_id))
    assert row is not None
    return row


async def frames_of(reply: Reply) -> list[ServerFrame]:
    return [frame async for frame in reply]


async def test_a_reply_streams_typed_frames_to_done(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=["Restart", " the", " router."]))
    async with await ParleyClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_gamma")
        reply = await client.send("My wifi keeps dropping", client_id="c-1")
        frames = await frames_of(reply)
        done = await reply.done()
    assert session.agent["id"] == "agent_gamma"
    assert isinstance(frames[0], AcceptedFrame) and frames[0].client_id == "c-1"
    assert all(isinstance(frame, DeltaFrame) for frame in frames[1:-1])
    assert isinstance(done, DoneFrame) and frames[-1] is done
    assert done.status is ReplyStatus.COMPLETE
    assert reply.seqs == list(range(1, len(reply.seqs) + 1))
    row = await stored(db, reply.reply_id)
    assert (row["content"], str(row["id"])) == ("Restart the router.", reply.message_id)
    assert reply.text == row["content"]


async def test_a_drop_mid_reply_is_resumed_by_seq_on_another_instance(
    server: ParleyServer,
    server_b: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
) -> None:
    fake.enqueue(Script(chunks=["Alpha. "], hold=True, after_release=["Bravo. ", "Charlie."]))
    async with CuttableProxy(server.port) as proxy:
        client = await ParleyClient.connect(proxy.ws_url, make_token()[1], backoff=QUICK)
        async with client:
            session = await client.start(agent="agent_gamma")
            reply = await client.send("Spell it")
            async for frame in reply:
                if isinstance(frame, DeltaFrame):
                    break
            fake.wait_for_held(1)
            proxy.target_port = server_b.port  # the client comes back to another instance
            frames = client.frames()
            proxy.cut()
            async for frame in frames:
                if frame.type == "session":
                    break
            fake.release()
            done = await reply.done()
    assert client.session is not None and client.session.session_id == session.session_id
    assert client.reconnects == 1 and proxy.connections == 2
    assert isinstance(done, DoneFrame) and done.status is ReplyStatus.COMPLETE
    assert reply.text == "Alpha. Bravo. Charlie."
    assert reply.seqs == list(range(1, len(reply.seqs) + 1))  # none twice, none missing
    assert (await stored(db, reply.reply_id))["content"] == reply.text


async def test_a_message_whose_accepted_was_lost_is_sent_again_once(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=["Sent", " once."]))
    async with CuttableProxy(server.port) as proxy:
        client = await ParleyClient.connect(proxy.ws_url, make_token()[1], backoff=QUICK)
        async with client:
            session = await client.start(agent="agent_gamma")
            proxy.cut_after_next_send()
            reply = await client.send("Are you there?")
            await reply.done()
    assert proxy.connections == 2
    assert reply.text == "Sent once."
    assert len(fake.requests) == 1
    rows = await db.fetch(
        "SELECT role, content FROM messages WHERE conversation_id = $1 ORDER BY created_at",
        uuid.UUID(session.conversation_id),
    )
    assert [(r["role"], r["content"]) for r in rows] == [
        ("user", "Are you there?"),
        ("assistant", "Sent once."),
    ]


async def test_cancel_and_the_same_client_id_again(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Step one. "], hold=True))
    async with await ParleyClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        reply = await client.send("How do I reset it?")
        async for frame in reply:
            if isinstance(frame, DeltaFrame):
                break
        assert await client.send("How do I reset it?", client_id=reply.client_id) is reply
        await client.cancel(reply.reply_id or "")
        done = await reply.done()
        again = await client.ask("How do I reset it?", client_id=reply.client_id)
    assert isinstance(done, DoneFrame) and done.status is ReplyStatus.CANCELLED
    assert reply.text == "Step one. "
    assert (again.reply_id, again.text, again.message_id) == (
        reply.reply_id,
        reply.text,
        reply.message_id,
    )
    assert len(fake.requests) == 1


async def test_a_confirmed_tool_call_runs(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    arguments = '{"subject": "From parley.client", "description": "A test ticket."}'
    fake.enqueue(
        Script(tool_calls=[("create_ticket", arguments)]), Script(chunks=["Ticket opened."])
    )
    async with await ParleyClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_tools")
        reply = await client.send("Open a ticket")
        async for frame in reply:
            if isinstance(frame, ToolCallFrame) and frame.status == "awaiting_confirmation":
                await client.confirm(frame.reply_id, frame.call_id, approve=True)
    steps = [
        (frame.type, frame.status)
        for frame in reply.frames
        if isinstance(frame, ToolCallFrame | ToolResultFrame)
    ]
    assert steps == [
        ("tool_call", "awaiting_confirmation"),
        ("tool_call", "running"),
        ("tool_result", "ok"),
    ]
    assert reply.text == "Ticket opened."


async def test_refusals_raise_parley_errors(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    async with await ParleyClient.connect(server.ws_url, make_token()[1]) as client:
        with pytest.raises(ParleyError) as unknown:
            await client.start(agent="agent_nobody")
        await client.start(agent="agent_gamma")
        too_long = await client.send("x" * 20_000)
        with pytest.raises(ParleyError) as refused:
            await too_long.done()
        with pytest.raises(ParleyError):
            await frames_of(too_long)
    assert unknown.value.code == "unknown_agent" and unknown.value.frame is not None
    assert refused.value.code == "too_large"
    async with await ParleyClient.connect(server.ws_url, "not-a-jwt") as stranger:
        with pytest.raises(ParleyError) as unauthorized:
            await stranger.start(agent="agent_gamma")
    assert unauthorized.value.code == "unauthorized"
