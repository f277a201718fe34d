"""Storage outages: typed errors for clients, nothing lost, recovery without restart.

These tests run their own private Redis and Postgres (never the shared
ones), stop them under a running Parley, and start them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import TokenFactory
from support.client import ChatClient
from support.fake_llm import FakeLLM
from support.private import PrivateRedis
from support.server import ParleyServer


async def test_redis_outage_is_reported_and_survived(
    private_redis_server: ParleyServer,
    private_redis: PrivateRedis,
    fake: FakeLLM,
    make_token: TokenFactory,
) -> None:
    token = make_token()[1]
    async with await ChatClient.connect(private_redis_server.ws_url, token) as client:
        await client.start(agent="agent_gamma")
        private_redis.stop()
        ready = await asyncio.to_thread(httpx.get, f"{private_redis_server.url}/ready", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["redis"]
        await client.send({"type": "message", "client_id": "during-outage", "text": "hello?"})
        error = await client.expect("error")
        assert error["code"] == "internal"
        assert error["client_id"] == "during-outage"
        assert "retry with the same client_id" in error["message"]
        assert fake.requests == []

        private_redis.start()
        accepted = await client.say("hello?", client_id="during-outage")
        reply = await client.reply(accepted["reply_id"])
    assert reply.done is not None and reply.done["status"] == "complete"
    ready = await asyncio.to_thread(httpx.get, f"{private_redis_server.url}/ready", timeout=10)
    assert ready.status_code == 200


class PrivatePostgres:
    """A private PostgreSQL from the ``pgserver`` wheel, stopped and started at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server: Any = None

    def start(self) -> str:
        import pgserver  # type: ignore[import-untyped]

        self.server = pgserver.get_server(self.folder, cleanup_mode="stop")
        uri: str = self.server.get_uri()
        return uri

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[tuple[PrivatePostgres, str]]:
    postgres = PrivatePostgres(tmp_path / "pg")
    url = postgres.start()
    yield postgres, url
    postgres.stop()


async def test_postgres_outage_loses_no_message(
    server_env: dict[str, str],
    private_postgres: tuple[PrivatePostgres, str],
    fake: FakeLLM,
    make_token: TokenFactory,
) -> None:
    postgres, url = private_postgres
    with ParleyServer({**server_env, "DATABASE_URL": url}, name="parley-nopg") as instance:
        async with await ChatClient.connect(instance.ws_url, make_token()[1]) as client:
            session = await client.start(agent="agent_gamma")
            postgres.stop()
            ready = await asyncio.to_thread(httpx.get, f"{instance.url}/ready", timeout=10)
            assert ready.json()["failing"] == ["postgres"]
            await client.send({"type": "message", "client_id": "m-1", "text": "still there?"})
            error = await client.expect("error")
            assert (error["code"], error["client_id"]) == ("internal", "m-1")
            assert fake.requests == []

            postgres.start()
            accepted = None
            for _ in range(3):  # pooled connections to the old server fail once each
                await client.send({"type": "message", "client_id": "m-1", "text": "still there?"})
                frame = await client.receive()
                if frame["type"] == "accepted":
                    accepted = frame
                    break
                assert frame["code"] == "internal"
            assert accepted is not None
            reply = await client.reply(accepted["reply_id"])
            assert reply.done is not None and reply.done["status"] == "complete"
            again = await client.start(conversation_id=session["conversation_id"])
        assert [m["content"] for m in again["history"]] == ["still there?", reply.text]
