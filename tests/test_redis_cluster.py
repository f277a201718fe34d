"""Parley on a Redis Cluster: every key one script touches shares a hash slot.

The unit tests check the key layout itself (storage/keys.py), so a key added
later cannot leave its family's slot unnoticed. The rest run real Parley
servers against a real cluster of three masters, started from the same
``redis-server`` binary for this module and torn down after it.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from conftest import TokenFactory
from parley.config import Settings
from parley.examples.background import BackgroundServer
from parley.preflight import redis_problem
from parley.replies.appender import Appender
from parley.replies.feed import ReplyFeed
from parley.replies.log import ReplyLog
from parley.replies.writer import ReplyWriter
from parley.storage.keys import SHARDS, Keys, new_reply_id, shard_of
from parley.storage.redis import as_text, cluster_seeds, connect
from parley.transport.ratelimit import limits_uri
from support.client import ChatClient
from support.cluster import LocalCluster
from support.fake_llm import FakeLLM, Script
from support.operations import Operator, frames_until, of_type
from support.scenarios import (
    cancelled_from_another_instance,
    killed_mid_reply,
    over_the_daily_budget,
    resumed_on_another_instance,
)
from support.server import ParleyServer
from support.tickets import awaiting, ticket_call, tickets

CLUSTER_PREFIX = f"parley-cluster-{uuid.uuid4().hex[:8]}"
KEYS = Keys(prefix=CLUSTER_PREFIX)
REST_LIMIT = 30  # a minute, per user: low enough for one test to reach


def slot(key: str) -> int:
    return key_slot(key.encode())


# -- the key layout (no cluster needed) ----------------------------------------------------


def test_a_reply_id_is_a_random_uuid_in_its_conversations_shard() -> None:
    for _ in range(500):
        conversation_id = str(uuid.uuid4())
        reply_id = new_reply_id(conversation_id)
        parsed = uuid.UUID(reply_id)
        assert (parsed.version, str(parsed)) == (4, reply_id)
        assert shard_of(reply_id) == shard_of(conversation_id)
    assert len({shard_of(new_reply_id(uuid.uuid4())) for _ in range(4000)}) > SHARDS * 0.9
    assert shard_of("not-a-uuid") == shard_of("not-a-uuid")  # stable, whatever the string


# Every Keys method and property, by what it names. A key named from a reply or a
# conversation must land in their shared slot; the others are touched one at a time.
SINGLE_KEY_FAMILIES = {
    "session",
    "budget",
    "rate_limits",
    "guest_rate_limits",
    "guest_secret",
    "held_conversations",
}
CHANNELS = {"control_channel", "operations_channel"}
LAYOUT = {"tagged", "active_replies"}  # take a shard number


def test_every_key_of_a_conversation_and_its_replies_shares_one_slot() -> None:
    members = {name for name in dir(Keys) if not name.startswith("_") and name != "prefix"}
    unknown = members - SINGLE_KEY_FAMILIES - CHANNELS - LAYOUT
    for _ in range(200):
        keys = Keys(prefix=f"p{uuid.uuid4().hex[:6]}")
        conversation_id = str(uuid.uuid4())
        reply_id = new_reply_id(conversation_id)
        expected = slot(keys.tagged(shard_of(conversation_id)))
        given = {
            "reply_id": reply_id,
            "conversation_id": conversation_id,
            "client_id": "client-1",
            "call_id": "call_abc",
        }
        for name in unknown:
            method = getattr(keys, name)
            parameters = inspect.signature(method).parameters
            assert set(parameters) <= set(given) | {"held"}, (
                f"Keys.{name} names something new: put it in its family's slot, "
                "or list it in this test as a single-key family"
            )
            named = method(**{p: given[p] for p in parameters if p in given})
            for key in named if isinstance(named, list) else [named]:
                assert slot(key) == expected, f"Keys.{name} leaves the slot: {key}"
        assert slot(keys.active_replies(shard_of(reply_id))) == expected


def test_the_scripts_key_lists_are_what_the_scripts_expect() -> None:
    keys = Keys()
    conversation_id = str(uuid.uuid4())
    reply_id = new_reply_id(conversation_id)
    opening = keys.opening(reply_id, conversation_id, "c1")
    assert opening[3] == keys.active_replies_of(reply_id)
    assert opening[5] == keys.history(conversation_id)  # KEYS[6]: read as the reply opens
    assert opening[6] == keys.held(conversation_id)  # KEYS[7]: refuses replies while held
    assert keys.opening(reply_id, conversation_id, "c1", held=False) == opening[:6]
    closing = keys.closing(reply_id, conversation_id)
    assert (closing[0], closing[5], closing[6]) == (
        keys.events(reply_id),
        keys.conversation_reply(conversation_id),
        keys.history(conversation_id),  # KEYS[7]: the turn is appended as the reply closes
    )


async def test_opening_a_reply_not_minted_for_its_conversation_is_refused() -> None:
    nowhere = connect("redis://127.0.0.1:1/0")  # refused before Redis is asked
    reply_log = ReplyLog(nowhere, Keys(), Appender(nowhere, interval=0), retention_seconds=600)
    conversation_id = str(uuid.uuid4())
    stranger = str(uuid.uuid4())
    while shard_of(stranger) == shard_of(conversation_id):
        stranger = str(uuid.uuid4())
    with pytest.raises(ValueError, match="not minted"):
        await reply_log.open(
            reply_id=stranger,
            user_id="u",
            conversation_id=conversation_id,
            client_id="c",
            agent_id="a",
            owner="o",
            lease_ms=1000,
        )


def test_cluster_urls_are_read_and_checked() -> None:
    assert cluster_seeds("redis+cluster://:s%40cret@10.0.0.1:7000,[::1]:7001") == (
        [("10.0.0.1", 7000), ("::1", 7001)],
        {"password": "s@cret"},
    )
    assert cluster_seeds("rediss+cluster://u:p@h:7000")[1] == {
        "username": "u",
        "password": "p",
        "ssl": True,
    }
    assert Settings(redis_url="redis+cluster://h:7000").redis_url == "redis+cluster://h:7000"
    for wrong in ("redis+cluster://h", "redis+cluster://h:7000,:7001", "redis+cluster://h:99999"):
        with pytest.raises(ValueError, match="host:port"):
            Settings(redis_url=wrong)
    assert limits_uri("redis+cluster://a:1,b:2") == "async+redis+cluster://a:1,b:2"
    assert limits_uri("redis://h:6379/0") == "async+redis://h:6379/0"


# -- a real cluster ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def cluster_env(server_env: dict[str, str], cluster: LocalCluster) -> dict[str, str]:
    return {
        **server_env,
        "REDIS_URL": cluster.url,
        "PARLEY_REDIS_PREFIX": CLUSTER_PREFIX,
        "PARLEY_REST_RATE_LIMIT": f"{REST_LIMIT}/minute",
    }


@pytest.fixture(scope="module")
def first(cluster_env: dict[str, str]) -> Iterator[ParleyServer]:
    with ParleyServer(cluster_env, name="parley-cluster-a") as instance:
        yield instance


@pytest.fixture(scope="module")
def second(cluster_env: dict[str, str]) -> Iterator[ParleyServer]:
    with ParleyServer(cluster_env, name="parley-cluster-b") as instance:
        yield instance


@pytest.fixture
async def redis(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = connect(cluster.url)
    assert isinstance(client, RedisCluster)
    await client.initialize()  # reads the slot map: get_node_from_key needs it
    yield client
    await client.aclose()


async def test_parley_check_asks_the_cluster(cluster: LocalCluster) -> None:
    assert await redis_problem(cluster.url) is None
    assert await redis_problem(f"redis+cluster://127.0.0.1:{cluster.ports[1]}") is None
    nowhere = await redis_problem("redis+cluster://127.0.0.1:1")
    assert nowhere is not None and nowhere.startswith("REDIS_URL: cannot connect")


async def test_a_streamed_reply_keeps_its_keys_in_one_slot(
    first: ParleyServer,
    cluster: LocalCluster,
    redis: RedisCluster,
    fake: FakeLLM,
    make_token: TokenFactory,
) -> None:
    fake.enqueue(Script(chunks=["Restart", " the", " router."]))
    async with await ChatClient.connect(first.ws_url, make_token()[1]) as client:
        session = await client.start(agent="agent_gamma")
        accepted = await client.say("My wifi drops", client_id="wifi-1")
        reply = await client.reply(accepted["reply_id"])
    assert reply.text == "Restart the router."
    assert reply.seqs == list(range(1, len(reply.seqs) + 1))
    assert reply.done is not None and reply.done["status"] == "complete"

    conversation_id, reply_id = session["conversation_id"], accepted["reply_id"]
    family = KEYS.opening(reply_id, conversation_id, "wifi-1") + KEYS.closing(
        reply_id, conversation_id
    )
    [where] = {cluster.keyslot(key) for key in family}  # as the cluster itself hashes them
    stored = {
        KEYS.events(reply_id),
        KEYS.state(reply_id),
        KEYS.client_message(conversation_id, "wifi-1"),
    }
    assert await redis.exists(*stored) == len(stored)
    in_slot = {as_text(key) for key in await redis.cluster_get_keys_in_slot(where, 1000)}
    assert stored <= in_slot
    # The reply closed: not busy, not active, its lease gone.
    assert not await redis.exists(KEYS.conversation_reply(conversation_id), KEYS.lease(reply_id))
    assert not await redis.sismember(KEYS.active_replies_of(reply_id), reply_id)


async def test_replies_of_many_conversations_spread_over_every_node(
    first: ParleyServer, redis: RedisCluster, fake: FakeLLM, make_token: TokenFactory
) -> None:
    token = make_token()[1]
    reply_ids = []
    async with await ChatClient.connect(first.ws_url, token) as client:
        for n in range(9):
            fake.enqueue(Script(chunks=[f"Answer {n}."]))
            await client.start(agent="agent_gamma")
            reply = await client.ask(f"question {n}")
            assert reply.text == f"Answer {n}."
            reply_ids.append(reply.reply_id)
    nodes = {redis.get_node_from_key(KEYS.events(r)).name for r in reply_ids}  # type: ignore[union-attr]
    # Nine random shards all on one of three nodes: (1/3)^8, about 1 in 6,500.
    assert len(nodes) > 1


async def test_resume_on_a_second_instance(
    first: ParleyServer, second: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    seen, rest = await resumed_on_another_instance(first, second, fake, make_token()[1])
    assert seen.text + rest.text == "Alpha. Bravo. Charlie. "
    assert seen.seqs + rest.seqs == list(range(1, rest.seqs[-1] + 1))
    assert rest.done is not None and rest.done["status"] == "complete"


async def test_cancel_from_another_instance(
    first: ParleyServer, second: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    rest = await cancelled_from_another_instance(first, second, fake, make_token()[1])
    assert rest.done is not None and rest.done["status"] == "cancelled"


async def test_a_tool_confirmation_given_on_another_instance(
    first: ParleyServer,
    second: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Cluster ticket {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject, "Approved elsewhere."), Script(chunks=["Done."]))
    token = make_token()[1]
    async with await ChatClient.connect(first.ws_url, token) as client:
        await client.start(agent="agent_tools")
        accepted = await client.say("Open a ticket")
        reply_id = accepted["reply_id"]
        asked = await client.reply(reply_id, until=awaiting)
        async with await ChatClient.connect(second.ws_url, token) as other:
            await other.confirm(reply_id, asked.tool_frames[-1]["call_id"], approve=True)
            rest = await client.reply(reply_id)
    assert rest.tool_results[-1]["status"] == "ok"
    assert rest.text == "Done."
    assert len(tickets(orders_service, subject)) == 1


async def test_the_daily_budget_refuses_a_turn(
    first: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    error = await over_the_daily_budget(first, fake, make_token()[1])
    assert error["code"] == "budget_exceeded"
    assert len(fake.requests) == 1


async def test_the_rest_rate_limit_counts_in_the_cluster(
    first: ParleyServer, second: ParleyServer, make_token: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {make_token()[1]}"}
    async with httpx.AsyncClient() as http:
        for n in range(REST_LIMIT):  # the two instances count together
            server = first if n % 2 else second
            assert (await http.get(f"{server.url}/v1/agents", headers=headers)).status_code == 200
        refused = await http.get(f"{first.url}/v1/agents", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "cannot be checked" not in refused.json()["error"]["message"]


async def test_a_conversation_taken_over_refuses_agent_replies_until_released(
    first: ParleyServer,
    second: ParleyServer,
    redis: RedisCluster,
    fake: FakeLLM,
    make_token: TokenFactory,
) -> None:
    fake.enqueue(Script(chunks=["First answer."]), Script(chunks=["The agent again."]))
    token = make_token()[1]
    async with (
        httpx.AsyncClient(base_url=second.url, timeout=30) as http,
        await ChatClient.connect(first.ws_url, token) as client,
    ):
        operator = Operator(http, make_token(f"op-{uuid.uuid4().hex[:8]}", admin=True)[1])
        conversation_id = (await client.start(agent="agent_gamma"))["conversation_id"]
        await client.ask("Hello")
        await operator.take(conversation_id)  # on the other instance
        await client.expect("handoff")
        assert await redis.exists(KEYS.held(conversation_id))
        held = await client.say("Is anyone there?")
        assert held["reply_id"] is None  # the flag, in the conversation's slot, said no
        posted = await operator.say(conversation_id, "Hello from a person.")
        frames = await frames_until(client, of_type("done", reply_id=posted["reply_id"]))
        assert frames[-1]["status"] == "complete"
        await operator.release(conversation_id)
        await client.expect("handoff")
        assert not await redis.exists(KEYS.held(conversation_id))
        again = await client.ask("And now?")
    assert again.text == "The agent again."
    assert len(fake.requests) == 2


async def test_the_sweeper_closes_the_reply_of_a_killed_instance(
    first: ParleyServer,
    cluster_env: dict[str, str],
    redis: RedisCluster,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
) -> None:
    token = make_token()[1]
    fake.enqueue(Script(chunks=["Half of an answer. "], hold=True))
    session, accepted, seen = await killed_mid_reply(cluster_env, "parley-cluster-doomed", token)
    reply_id = accepted["reply_id"]
    assert await redis.sismember(KEYS.active_replies_of(reply_id), reply_id)
    async with await ChatClient.connect(first.ws_url, token) as survivor:
        await survivor.start(session_id=session["session_id"])
        await survivor.send({"type": "resume", "reply_id": reply_id, "after_seq": 1})
        rest = await survivor.reply(reply_id)
    assert rest.done is not None and rest.done["status"] == "interrupted"
    row = await db.fetchrow("SELECT * FROM messages WHERE reply_id = $1", uuid.UUID(reply_id))
    assert row is not None
    assert (row["status"], row["content"]) == ("interrupted", seen.text + rest.text)
    assert not await redis.sismember(KEYS.active_replies_of(reply_id), reply_id)
    assert not await redis.exists(KEYS.conversation_reply(session["conversation_id"]))


async def test_one_script_call_per_slot_writes_many_replies_frames(
    cluster: LocalCluster, redis: RedisCluster
) -> None:
    keys = Keys(prefix=f"appender-{uuid.uuid4().hex[:6]}")
    reply_log = ReplyLog(redis, keys, Appender(redis, interval=0), retention_seconds=600)
    reply_ids = [new_reply_id(uuid.uuid4()) for _ in range(40)]
    writers = [ReplyWriter(reply_log, ReplyFeed(r, "u1"), r) for r in reply_ids]
    slots = {slot(keys.events(r)) for r in reply_ids}
    before = await eval_calls(redis)
    for n, writer in enumerate(writers):
        writer.delta(f"text {n}")
    for writer in writers:
        await writer.drain()
    assert await eval_calls(redis) - before == len(slots)  # one batch: a call per slot
    for n, reply_id in enumerate(reply_ids):
        assert await reply_log.written(reply_id) == (f"text {n}", 1)


async def eval_calls(redis: RedisCluster) -> int:
    stats = await redis.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    return sum(
        int(node_stats.get("cmdstat_eval", {}).get("calls", 0)) for node_stats in stats.values()
    )
