"""Scripts and batches on one shared Redis connection (parley/storage/multiplex.py),
against real Redis servers: the answers go to the right callers, error replies
stay with theirs, a command is sent at most once, and a lost connection is
replaced."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ResponseError

from parley.storage.multiplex import MultiplexedRedis, Multiplexer, Unsent
from parley.storage.redis import connect
from support.private import PrivateRedis
from support.proxy import CuttableProxy
from support.storage import StorageURLs

ECHO = "return {KEYS[1], ARGV[1]}"


def multiplexer(url: str, retries: int = 0) -> Multiplexer:
    pool = BlockingConnectionPool.from_url(url, retry=Retry(NoBackoff(), retries))
    return Multiplexer(pool)


async def test_scripts_of_a_parley_client_share_one_connection(
    private_redis: PrivateRedis,
) -> None:
    client = connect(private_redis.url)
    assert isinstance(client, MultiplexedRedis)
    echo = client.register_script(ECHO)
    try:
        answers = await asyncio.gather(*(echo(keys=["k"], args=[n]) for n in range(50)))
        assert answers == [[b"k", str(n).encode()] for n in range(50)]
        # Fifty scripts at once took one connection; this INFO takes a pooled one.
        assert (await client.info("clients"))["connected_clients"] == 2
    finally:
        await client.aclose()


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=60))
def test_concurrent_callers_each_get_their_own_answer(
    storage: StorageURLs, texts: list[str]
) -> None:
    async def echo_all() -> list[object]:
        client = connect(storage.redis_url)
        echo = client.register_script(ECHO)
        try:
            return await asyncio.gather(
                *(echo(keys=[f"k{i}"], args=[text]) for i, text in enumerate(texts))
            )
        finally:
            await client.aclose()

    answers = asyncio.run(echo_all())  # a loop per example: hypothesis calls it synchronously
    assert answers == [[f"k{i}".encode(), text.encode()] for i, text in enumerate(texts)]


async def test_an_error_reply_fails_its_own_caller_only(storage: StorageURLs) -> None:
    shared = multiplexer(storage.redis_url)
    key = f"multiplex:{uuid.uuid4()}"
    try:
        await shared.execute("SET", key, "not a number")
        calls = [shared.execute("ECHO", "before"), shared.execute("INCR", key)]
        calls.append(shared.execute("ECHO", "after"))
        before, failed, after = await asyncio.gather(*calls, return_exceptions=True)
        assert (before, after) == (b"before", b"after")
        assert isinstance(failed, ResponseError) and "not an integer" in str(failed)
        assert await shared.execute("PING") == b"PONG"  # the connection is still good
    finally:
        await shared.execute("DEL", key)
        await shared.aclose()


async def test_a_flushed_script_is_loaded_again(private_redis: PrivateRedis) -> None:
    client = connect(private_redis.url)
    echo = client.register_script(ECHO)
    try:
        assert await echo(keys=["k"], args=["one"]) == [b"k", b"one"]
        await client.script_flush()
        assert await echo(keys=["k"], args=["two"]) == [b"k", b"two"]
    finally:
        await client.aclose()


async def test_a_command_whose_answer_was_lost_is_not_sent_again(
    private_redis: PrivateRedis,
) -> None:
    direct = Redis.from_url(private_redis.url)
    async with CuttableProxy(private_redis.port) as proxy:
        port = urlsplit(proxy.ws_url).port
        shared = multiplexer(f"redis://127.0.0.1:{port}/0", retries=3)
        try:
            assert await shared.execute("PING") == b"PONG"
            proxy.cut_after_next_send()
            with pytest.raises(ConnectionError) as lost:
                await shared.execute("INCR", "counter")
            assert not isinstance(lost.value, Unsent)
            assert await direct.get("counter") == b"1"  # Redis ran it once
            assert await shared.execute("INCR", "counter") == 2  # on a new connection
            assert proxy.connections == 2
        finally:
            await shared.aclose()
            await direct.aclose()


async def test_a_redis_that_is_down_fails_calls_until_it_is_back(
    private_redis: PrivateRedis,
) -> None:
    shared = multiplexer(private_redis.url, retries=1)
    try:
        private_redis.stop()
        with pytest.raises(Unsent):  # nothing reached Redis: safe to send again later
            await shared.execute("ECHO", "anyone?")
        private_redis.start()
        assert await shared.execute("ECHO", "back") == b"back"
    finally:
        await shared.aclose()


async def test_a_cancelled_caller_does_not_take_the_next_callers_answer(
    private_redis: PrivateRedis,
) -> None:
    shared = multiplexer(private_redis.url)
    direct = Redis.from_url(private_redis.url)
    try:
        await shared.execute("PING")  # connected
        waiting = asyncio.create_task(shared.execute("BLPOP", "queue", 10))
        # Redis's state, polled until it holds the call: there is no event to wait on.
        while (await direct.info("clients"))["blocked_clients"] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await direct.rpush("queue", "for the cancelled call")
        assert await shared.execute("ECHO", "mine") == b"mine"
        assert await direct.llen("queue") == 0  # the cancelled call still ran
    finally:
        await shared.aclose()
        await direct.aclose()


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[Path]:
    """A private Redis on a Unix socket only, behind a password."""
    socket_path = tmp_path / "redis.sock"
    options = {"port": "0", "unixsocket": str(socket_path), "requirepass": "sesame"}
    options |= {"save": "", "appendonly": "no", "dir": str(tmp_path)}
    argv = [
        "redis-server",
        *(part for name, value in options.items() for part in (f"--{name}", value)),
    ]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    ping = ["redis-cli", "-s", str(socket_path), "-a", "sesame", "--no-auth-warning", "ping"]
    deadline = time.monotonic() + 10
    while subprocess.run(ping, capture_output=True, text=True).stdout.strip() != "PONG":
        assert time.monotonic() < deadline, "the guarded redis did not start"
        time.sleep(0.05)  # polling readiness, not synchronising a test
    yield socket_path
    server.kill()
    server.wait()


async def test_the_connection_is_opened_as_the_pools_are(guarded_redis: Path) -> None:
    # A Unix socket, a password and a database from the URL, as the pool uses them.
    url = f"unix://{guarded_redis}?password=sesame&db=3"
    client = connect(url)
    assert isinstance(client, MultiplexedRedis)
    put = client.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    try:
        assert await put(keys=["where"], args=["db 3"]) == b"OK"
        assert await client.get("where") == b"db 3"  # a pooled connection, same database
    finally:
        await client.aclose()
    other = Redis.from_url(f"unix://{guarded_redis}?password=sesame&db=0")
    try:
        assert await other.get("where") is None  # not written to database 0
    finally:
        await other.aclose()
