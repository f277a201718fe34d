"""Replies over the WebSocket: streaming, storage, cancel, resume, failures."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from redis.asyncio import Redis

from conftest import KEYS, REDIS_PREFIX, TokenFactory
from support.client import ChatClient, ask_once
from support.fake_llm import FakeLLM, Script
from support.scenarios import (
    cancelled_from_another_instance,
    killed_mid_reply,
    resumed_on_another_instance,
)
from support.server import ParleyServer
from support.storage import StorageURLs

WORDS = ["Restart", " the", " router,", " then", " wait", " thirty", " seconds."]


async def stored_reply(db: asyncpg.Connection, reply_id: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM messages WHERE reply_id = $1", uuid.UUID(reply_id))
    assert row is not None
    return row


async def usage_rows(db: asyncpg.Connection, message_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM llm_usage WHERE message_id = $1 ORDER BY id", uuid.UUID(message_id)
    )


async def test_reply_streams_in_order_and_is_stored_byte_for_byte(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=WORDS, prompt_tokens=321, completion_tokens=7))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("My wifi keeps dropping", client_id="first")
        reply = await client.reply(accepted["reply_id"])
    assert accepted["client_id"] == "first"
    assert reply.seqs == list(range(1, len(reply.seqs) + 1))
    assert reply.text == "".join(WORDS)
    assert reply.done is not None
    assert reply.done["status"] == "complete"
    assert reply.done["usage"] == {
        "prompt_tokens": 321,
        "completion_tokens": 7,
        "total_tokens": 328,
        "cost_usd": round((321 * 0.15 + 7 * 0.60) / 1e6, 6),
        "estimated": False,
    }
    row = await stored_reply(db, accepted["reply_id"])
    assert row["content"] == reply.text
    assert row["status"] == "complete"
    assert str(row["id"]) == reply.done["message_id"]
    [call] = await usage_rows(db, reply.done["message_id"])
    assert (call["provider"], call["model"], call["status"]) == (
        "openai",
        "gpt-4o-mini",
        "complete",
    )
    assert (call["prompt_tokens"], call["completion_tokens"], call["estimated"]) == (321, 7, False)
    assert call["ttft_ms"] is not None and call["latency_ms"] >= call["ttft_ms"]
    sent = fake.requests[0].body
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][-1] == {"role": "user", "content": "My wifi keeps dropping"}


async def test_history_is_sent_on_the_next_turn(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["First answer."]), Script(chunks=["Second answer."]))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        await client.ask("first question")
        await client.ask("second question")
    later = fake.requests[1].body["messages"]
    assert [m["content"] for m in later[1:]] == [
        "first question",
        "First answer.",
        "second question",
    ]


async def test_a_question_whose_reply_failed_stays_in_the_next_turns_history(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    # Postgres keeps the question of a reply that failed without text in the
    # conversation's context; the cached history the next turn reads must too.
    fake.enqueue(Script(chunks=["First answer."]))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_fallback")
        await client.ask("first question")
        fake.enqueue(*[Script(status=500) for _ in range(6)])  # both models, every retry
        failed = await client.ask("second question")
        assert failed.done is not None and failed.done["status"] == "failed"
        fake.enqueue(Script(chunks=["Third answer."]))
        await client.ask("third question")
    later = fake.requests[-1].body["messages"]
    assert [m["content"] for m in later[1:]] == [
        "first question",
        "First answer.",
        "second question",
        "third question",
    ]


async def test_anthropic_streams_and_reports_usage(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=WORDS, prompt_tokens=50, completion_tokens=9))
    reply = await ask_once(server.ws_url, make_token()[1], "agent_anthropic", "hello")
    assert reply.text == "".join(WORDS)
    assert reply.done is not None
    assert reply.done["usage"]["prompt_tokens"] == 50
    assert reply.done["usage"]["completion_tokens"] == 9
    assert reply.done["usage"]["estimated"] is False
    assert fake.requests[0].path == "/v1/messages"
    assert fake.requests[0].body["system"]
    [call] = await usage_rows(db, reply.done["message_id"])
    assert (call["provider"], call["model"]) == ("anthropic", "claude-haiku-4-5")


async def test_server_without_usage_is_estimated(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=WORDS, include_usage=False))
    reply = await ask_once(server.ws_url, make_token()[1], "agent_gamma", "hello")
    assert reply.done is not None
    assert reply.done["usage"]["estimated"] is True
    assert reply.done["usage"]["completion_tokens"] > 0


async def test_same_client_id_returns_same_ids_and_starts_nothing(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        first = await client.say("once", client_id="dup-1")
        await client.reply(first["reply_id"])
        again = await client.say("once", client_id="dup-1")
        replayed = await client.reply(again["reply_id"])
        session = await client.start(
            conversation_id=(await client.start(agent="agent_gamma"))["conversation_id"]
        )
    assert again == first
    assert replayed.done is not None and replayed.done["status"] == "complete"
    assert len(fake.requests) == 1
    assert session["history"] == []


async def test_a_resend_redis_has_forgotten_is_caught_by_postgres_and_stores_nothing(
    server: ParleyServer, storage: StorageURLs, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    redis = Redis.from_url(storage.redis_url)
    logs_before = set(await redis.keys(f"{REDIS_PREFIX}:{{*}}:reply:*:events"))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_gamma")
        conversation_id = session["conversation_id"]
        first = await client.say("once", client_id="old-1")
        await client.reply(first["reply_id"])
        # What expiry (an hour on) would remove: now only Postgres knows "old-1".
        await redis.delete(KEYS.client_message(conversation_id, "old-1"))
        # The resend's reply starts calling the model before Postgres reports
        # the duplicate; it must vanish without a trace and leave the
        # conversation free.
        again = await client.say("once", client_id="old-1")
        replayed = await client.reply(again["reply_id"])  # the first reply, once more
        after = await client.ask("and then?")
    new_logs = set(await redis.keys(f"{REDIS_PREFIX}:{{*}}:reply:*:events")) - logs_before
    await redis.aclose()
    assert (again["message_id"], again["reply_id"]) == (first["message_id"], first["reply_id"])
    assert replayed.done is not None and replayed.done["status"] == "complete"
    assert after.done is not None and after.done["status"] == "complete"
    assert new_logs == {KEYS.events(r).encode() for r in (first["reply_id"], after.reply_id)}
    rows = await db.fetch(
        "SELECT role FROM messages WHERE conversation_id = $1 ORDER BY created_at",
        uuid.UUID(conversation_id),
    )
    assert [row["role"] for row in rows] == ["user", "assistant", "user", "assistant"]


async def test_message_while_a_reply_runs_is_busy(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Working on it, please wait. "], hold=True))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("long task")
        await client.reply(accepted["reply_id"], until_seq=1)
        await client.send({"type": "message", "client_id": "second", "text": "another"})
        error = await client.expect("error")
        fake.release()
        reply = await client.reply(accepted["reply_id"])
    assert error["code"] == "busy" and error["client_id"] == "second"
    assert reply.done is not None and reply.done["status"] == "complete"


async def test_cancel_keeps_partial_text_and_estimated_usage(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=["Step one: open the settings panel. "], hold=True))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("help")
        partial = await client.reply(accepted["reply_id"], until_seq=1)
        await client.send({"type": "cancel", "reply_id": accepted["reply_id"]})
        rest = await client.reply(accepted["reply_id"])
    fake.wait_for_disconnects(1)
    assert rest.done is not None and rest.done["status"] == "cancelled"
    assert rest.done["usage"]["estimated"] is True
    text = partial.text + rest.text
    assert text == "Step one: open the settings panel. "
    row = await stored_reply(db, accepted["reply_id"])
    assert (row["content"], row["status"], row["estimated"]) == (text, "cancelled", True)
    [call] = await usage_rows(db, rest.done["message_id"])
    assert call["status"] == "cancelled"


async def test_cancel_from_another_instance_stops_the_reply(
    server: ParleyServer, server_b: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    rest = await cancelled_from_another_instance(server, server_b, fake, make_token()[1])
    assert rest.done is not None and rest.done["status"] == "cancelled"


async def test_another_user_cannot_cancel_or_resume(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    reply = await ask_once(server.ws_url, make_token()[1], "agent_gamma", "hi")
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as mallory:
        await mallory.send({"type": "cancel", "reply_id": reply.reply_id})
        assert (await mallory.expect("error"))["code"] == "not_found"
        await mallory.send({"type": "resume", "reply_id": reply.reply_id, "after_seq": 0})
        assert (await mallory.expect("error"))["code"] == "not_found"


async def test_resume_after_disconnect_on_the_same_and_another_instance(
    server: ParleyServer, server_b: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    # The client is gone; the reply goes on. Reattach on the other instance.
    seen, rest = await resumed_on_another_instance(server, server_b, fake, make_token()[1])
    assert rest.seqs[0] == seen.seqs[-1] + 1
    assert seen.seqs + rest.seqs == list(range(1, rest.seqs[-1] + 1))
    assert seen.text + rest.text == "Alpha. Bravo. Charlie. "
    assert rest.done is not None and rest.done["status"] == "complete"


async def test_two_tabs_see_the_same_reply(
    server: ParleyServer, server_b: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    token = make_token()[1]
    fake.enqueue(Script(chunks=["One. ", "Two. "], hold=True))
    async with (
        await ChatClient.connect(server.ws_url, token) as tab1,
        await ChatClient.connect(server_b.ws_url, token) as tab2,
    ):
        session = await tab1.start(agent="agent_gamma")
        accepted = await tab1.say("count")
        await tab1.reply(accepted["reply_id"], until_seq=1)
        other = await tab2.start(conversation_id=session["conversation_id"])
        await tab2.send(
            {"type": "resume", "reply_id": other["active_reply"]["reply_id"], "after_seq": 0}
        )
        fake.release()
        first_rest = await tab1.reply(accepted["reply_id"])
        second = await tab2.reply(accepted["reply_id"])
    assert second.text == "One. Two. "
    assert second.done == first_rest.done


async def test_resume_after_the_log_expired_gets_resync(
    server: ParleyServer, storage: StorageURLs, fake: FakeLLM, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_gamma")
        reply = await client.ask("hi")
        redis = Redis.from_url(storage.redis_url)
        # What expiry would remove:
        await redis.delete(KEYS.events(reply.reply_id), KEYS.state(reply.reply_id))
        await redis.aclose()
        await client.send({"type": "resume", "reply_id": reply.reply_id, "after_seq": 0})
        resync = await client.expect("resync")
    assert resync["reply_id"] == reply.reply_id
    assert resync["message"]["content"] == reply.text
    assert resync["message"]["status"] == "complete"


async def test_fallback_to_next_model_before_first_token(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(*[Script(status=503, model_filter="gpt-4o") for _ in range(3)])
    fake.enqueue(Script(chunks=["Fallback reply."], model_filter="claude-haiku-4-5"))
    reply = await ask_once(server.ws_url, make_token()[1], "agent_fallback", "hello")
    assert reply.text == "Fallback reply."
    assert reply.done is not None and reply.done["status"] == "complete"
    calls = await usage_rows(db, reply.done["message_id"])
    assert [(c["model"], c["status"]) for c in calls] == [
        ("gpt-4o", "failed"),
        ("gpt-4o", "failed"),
        ("gpt-4o", "failed"),
        ("claude-haiku-4-5", "complete"),
    ]
    assert "503" in calls[0]["error"]


async def test_failure_after_first_token_keeps_partial_text_without_fallback(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=["Partial ", "answer ", "never ", "finished"], break_after=2))
    reply = await ask_once(server.ws_url, make_token()[1], "agent_fallback", "hello")
    assert reply.done is not None and reply.done["status"] == "failed"
    assert reply.text == "Partial answer "
    assert len(fake.requests) == 1  # no retry, no fallback after the first token
    row = await stored_reply(db, reply.reply_id)
    assert (row["content"], row["status"]) == ("Partial answer ", "failed")


async def test_every_model_failing_is_upstream_unavailable(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(*[Script(status=500) for _ in range(6)])
    reply = await ask_once(server.ws_url, make_token()[1], "agent_fallback", "hello")
    assert [e["code"] for e in reply.errors] == ["upstream_unavailable"]
    assert reply.done is not None and reply.done["status"] == "failed"
    assert reply.text == ""
    assert len(await usage_rows(db, reply.done["message_id"])) == 6


async def test_killed_instance_leaves_its_reply_interrupted(
    server: ParleyServer,
    server_env: dict[str, str],
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
) -> None:
    user_id, token = make_token()
    fake.enqueue(Script(chunks=["Half of an answer. "], hold=True))
    session, accepted, seen = await killed_mid_reply(server_env, "parley-doomed", token)
    async with await ChatClient.connect(server.ws_url, token) as survivor:
        await survivor.start(session_id=session["session_id"])
        await survivor.send({"type": "resume", "reply_id": accepted["reply_id"], "after_seq": 1})
        rest = await survivor.reply(accepted["reply_id"])
    assert rest.done is not None and rest.done["status"] == "interrupted"
    row = await stored_reply(db, accepted["reply_id"])
    assert (row["status"], row["content"]) == ("interrupted", seen.text + rest.text)
    # The call it died in still has its usage row: estimated, and marked so.
    [call] = await usage_rows(db, str(row["id"]))
    assert (call["status"], call["estimated"], call["model"]) == (
        "interrupted",
        True,
        "gpt-4o-mini",
    )
    assert (call["agent_id"], call["user_id"]) == ("agent_gamma", user_id)  # as it was opened
    assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0
    assert rest.done["usage"]["estimated"] is True


async def test_a_reply_redis_forgot_is_closed_from_postgres(
    server: ParleyServer,
    server_env: dict[str, str],
    storage: StorageURLs,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
) -> None:
    """Its instance died and Redis lost its state (a restart without persistence):
    only Postgres knows the reply is streaming; the sweeper's orphan pass closes it."""
    user_id, token = make_token()
    fake.enqueue(Script(chunks=["Begun. "], hold=True))
    try:
        session, accepted, _ = await killed_mid_reply(server_env, "parley-orphaning", token)
    finally:
        fake.release()
    reply_id, conversation_id = accepted["reply_id"], session["conversation_id"]
    redis = Redis.from_url(storage.redis_url)
    try:
        await redis.delete(
            KEYS.events(reply_id),
            KEYS.state(reply_id),
            KEYS.lease(reply_id),
            KEYS.conversation_reply(conversation_id),
        )
        await redis.srem(KEYS.active_replies_of(reply_id), reply_id)
    finally:
        await redis.aclose()
    await db.execute(  # the orphan pass waits until a reply is long overdue
        "UPDATE messages SET created_at = created_at - interval '1 hour' WHERE reply_id = $1",
        uuid.UUID(reply_id),
    )
    for _ in range(600):  # the surviving instance's sweeper runs an orphan pass every ~20 s
        row = await stored_reply(db, reply_id)
        if row["status"] != "streaming":
            break
        await asyncio.sleep(0.1)  # polling the outcome, not synchronising on time
    assert row["status"] == "interrupted"
    [call] = await usage_rows(db, str(row["id"]))
    assert (call["status"], call["estimated"]) == ("interrupted", True)
    assert (call["agent_id"], call["user_id"]) == ("agent_gamma", user_id)


async def test_a_sweep_with_nothing_to_close_leaves_no_claim_behind(
    server: ParleyServer, storage: StorageURLs
) -> None:
    """A reply in the running set with no lease and no stored message (opened, never
    stored): the sweeper drops it and releases its claim, which would otherwise keep
    an orphan pass from the reply for a minute."""
    reply_id = str(uuid.uuid4())
    running = KEYS.active_replies_of(reply_id)
    redis = Redis.from_url(storage.redis_url)
    try:
        await redis.sadd(running, reply_id)
        for _ in range(300):  # the sweeper runs every second
            if not await redis.sismember(running, reply_id):
                break
            await asyncio.sleep(0.1)  # polling the outcome, not synchronising on time
        assert not await redis.sismember(running, reply_id)
        assert await redis.exists(KEYS.reaping(reply_id)) == 0
    finally:
        await redis.aclose()


async def test_stopping_an_instance_stores_its_reply_as_interrupted(
    server: ParleyServer,
    server_env: dict[str, str],
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
) -> None:
    leaving = ParleyServer(
        {**server_env, "PARLEY_SHUTDOWN_GRACE_SECONDS": "0.2"}, name="parley-leaving"
    ).start()
    token = make_token()[1]
    fake.enqueue(Script(chunks=["Most of an answer. "], hold=True))
    try:
        async with await ChatClient.connect(leaving.ws_url, token) as client:
            await client.start(agent="agent_gamma")
            accepted = await client.say("go")
            seen = await client.reply(accepted["reply_id"], until_seq=1)
    finally:
        leaving.stop()
    async with await ChatClient.connect(server.ws_url, token) as other:
        await other.send({"type": "resume", "reply_id": accepted["reply_id"], "after_seq": 1})
        rest = await other.reply(accepted["reply_id"])
    assert rest.done is not None and rest.done["status"] == "interrupted"
    row = await stored_reply(db, accepted["reply_id"])
    assert (row["status"], row["content"]) == ("interrupted", seen.text + rest.text)
    assert "Most of an answer." in row["content"]
