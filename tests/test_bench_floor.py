"""The benchmark's floor (bench/floor.py) keeps the promises it stands for: the user's
message is committed before the model is asked, every piece of text is in the reply's
Redis Stream, the reply and its usage are committed, and a bad token gets nothing.
Real processes: the bench stub as the vendor, Postgres, a private Redis, and the
official ``openai`` SDK as the client."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import jwt
import openai
import pytest
from bench.common import token
from redis.asyncio import Redis

from support.private import PrivateRedis
from support.server import free_port
from support.storage import StorageURLs

REPO = Path(__file__).resolve().parent.parent
TOKENS = 6
SECRET = "floor-test-secret-of-at-least-32-bytes!"


def serve(argv: list[str], health: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling a readiness probe, not synchronising a test
    process.kill()
    raise AssertionError(f"{argv[1]} did not start:\n{log.read_text()}")


@pytest.fixture
def floor_url(storage: StorageURLs, private_redis: PrivateRedis, tmp_path: Path) -> Iterator[str]:
    stub_port, floor_port = free_port(), free_port()
    stub_url, floor_url = f"http://127.0.0.1:{stub_port}", f"http://127.0.0.1:{floor_port}"
    stub_argv = ["-m", "bench.stub", "--port", str(stub_port), "--tokens", str(TOKENS)]
    stub_argv += ["--interval-ms", "1"]
    floor_argv = ["-m", "bench.floor", "--port", str(floor_port), "--stub-url", stub_url]
    floor_argv += ["--database-url", storage.database_url, "--redis-url", private_redis.url]
    floor_argv += ["--secret", SECRET]
    with contextlib.ExitStack() as running:  # both stopped however the test ends
        running.callback(stop, serve(stub_argv, f"{stub_url}/health", tmp_path / "stub.log"))
        running.callback(stop, serve(floor_argv, f"{floor_url}/health", tmp_path / "floor.log"))
        yield floor_url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=15)


def bearer(secret: str = SECRET, **claims: object) -> str:
    return jwt.encode({"sub": "ada", "exp": int(time.time()) + 60, **claims}, secret, "HS256")


async def test_the_floor_stores_the_turn_and_every_piece_of_text(
    floor_url: str, storage: StorageURLs, private_redis: PrivateRedis
) -> None:
    user = f"ada-{uuid.uuid4()}"
    client = openai.AsyncOpenAI(base_url=f"{floor_url}/v1", api_key=bearer(sub=user))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    pieces = [c.choices[0].delta.content async for c in stream if c.choices]
    expected = [token(i) for i in range(TOKENS)]
    assert pieces == expected

    db = await asyncpg.connect(storage.database_url)
    try:
        rows = await db.fetch(
            "SELECT reply_id, role, text, completion_tokens FROM floor_messages"
            " WHERE user_id = $1 ORDER BY created_at",
            user,
        )
    finally:
        await db.close()
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assert rows[0]["text"] == "hello" and rows[1]["text"] == "".join(expected)
    assert rows[1]["completion_tokens"] == TOKENS
    assert rows[0]["reply_id"] == rows[1]["reply_id"]

    redis = Redis.from_url(private_redis.url)
    try:
        entries = await redis.xrange(f"floor:{rows[0]['reply_id']}")
    finally:
        await redis.aclose()
    frames = [json.loads(fields[b"f"]) for _, fields in entries]
    assert frames == [{"type": "delta", "text": piece} for piece in expected] + [{"type": "done"}]


@pytest.mark.parametrize(
    "token_of",
    [
        lambda: bearer(secret="another-secret-of-at-least-32-bytes-long"),
        lambda: bearer(exp=int(time.time()) - 10),
        lambda: jwt.encode({"sub": "ada"}, SECRET, "HS256"),  # no expiry
        lambda: "not-a-jwt",
    ],
    ids=["wrong key", "expired", "no exp", "garbage"],
)
async def test_the_floor_refuses_a_bad_token_and_stores_nothing(
    floor_url: str, storage: StorageURLs, token_of: object
) -> None:
    assert callable(token_of)
    stored = await stored_messages(storage)
    client = openai.AsyncOpenAI(base_url=f"{floor_url}/v1", api_key=token_of(), max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert await stored_messages(storage) == stored


async def stored_messages(storage: StorageURLs) -> int:
    db = await asyncpg.connect(storage.database_url)
    try:
        return int(await db.fetchval("SELECT count(*) FROM floor_messages"))
    finally:
        await db.close()
