"""``parley serve`` with embedded storage: one Parley per data directory, an
honest start-up banner, and a prompt Ctrl-C. Real processes, real embedded
Postgres and Redis.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from conftest import TokenFactory
from support.client import ChatClient, ask_once
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer, free_port, run_parley

STORAGE_URLS = ("DATABASE_URL", "REDIS_URL")


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in env.items() if key not in names}


@pytest.fixture
def embedded_env(
    server_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """The test servers' settings, but no storage URLs: Parley embeds both servers.

    Child processes inherit this process's environment, so the URLs go from
    it too (``server_env`` has already resolved the suite's own storage).
    """
    for name in STORAGE_URLS:
        monkeypatch.delenv(name, raising=False)
    return {**without(server_env, *STORAGE_URLS), "PARLEY_DATA_DIR": str(tmp_path / "data")}


def serve(env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    """Run ``parley serve`` expecting it to give up; a server that starts fails the test."""
    return run_parley("serve", "--port", str(port), env=env)


async def test_a_second_serve_on_the_same_data_dir_leaves_the_first_alone(
    embedded_env: dict[str, str], fake: FakeLLM, make_token: TokenFactory, tmp_path: Path
) -> None:
    with ParleyServer(embedded_env, name="parley-embedded") as first:
        assert first.process is not None
        second = serve(embedded_env, free_port())
        assert second.returncode != 0
        assert f"another Parley (pid {first.process.pid})" in second.stderr
        assert "Parley on" not in second.stderr
        assert "Traceback" not in second.stderr

        elsewhere = tmp_path / "elsewhere"
        taken = serve({**embedded_env, "PARLEY_DATA_DIR": str(elsewhere)}, first.port)
        assert taken.returncode != 0
        assert f"cannot listen on 127.0.0.1:{first.port}" in taken.stderr
        assert "Parley on" not in taken.stderr
        assert not (elsewhere / "postgres").exists(), "embedded servers were started"

        ready = await asyncio.to_thread(httpx.get, f"{first.url}/ready", timeout=10)
        assert ready.status_code == 200
        reply = await ask_once(first.ws_url, make_token()[1], "agent_gamma", "still there?")
        assert reply.done is not None and reply.done["status"] == "complete"


def test_banner_names_only_the_embedded_servers(
    server_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    env = {**without(server_env, "REDIS_URL"), "PARLEY_DATA_DIR": str(tmp_path / "data")}
    with ParleyServer(env, name="parley-half-embedded") as instance:
        banner = instance.log()
    assert f"EMBEDDED Redis in {tmp_path / 'data'}/" in banner
    assert "Postgres/Redis" not in banner
    assert "EMBEDDED Postgres" not in banner


def test_ctrl_c_stops_an_idle_server_cleanly(embedded_env: dict[str, str]) -> None:
    with ParleyServer(embedded_env, name="parley-idle") as instance:
        assert instance.process is not None
        instance.process.send_signal(signal.SIGINT)
        instance.process.wait(60)
    # Stopping the embedded Redis used to fall back to redis-py's reconnect
    # retries (SHUTDOWN closes the connection, which they took for a fault):
    # seconds of waiting on every exit. How long an exit takes is measured
    # by hand (docs); here: it ends, cleanly.
    assert instance.process.returncode == 0


async def test_ctrl_c_during_a_reply_says_what_it_waits_for_and_again_stops_at_once(
    server_env: dict[str, str], fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(Script(chunks=["Working on it. "], hold=True))
    grace = {"PARLEY_SHUTDOWN_GRACE_SECONDS": "600"}  # the first Ctrl-C alone would wait this out
    instance = ParleyServer({**server_env, **grace}, name="parley-interrupted").start()
    try:
        async with await ChatClient.connect(instance.ws_url, make_token()[1]) as client:
            await client.start(agent="agent_gamma")
            accepted = await client.say("Take your time")
            await client.reply(accepted["reply_id"], until_seq=1)
        assert instance.process is not None
        instance.process.send_signal(signal.SIGINT)
        await asyncio.to_thread(
            instance.wait_for_log,
            "waiting for 1 reply to finish (up to 600 s); press Ctrl-C again to stop now",
        )
        instance.process.send_signal(signal.SIGINT)
        # Well inside the 600 s grace: the second Ctrl-C did not wait for the reply.
        await asyncio.to_thread(instance.process.wait, 120)
    finally:
        fake.release()
        instance.stop()
    stored = await db.fetchrow(
        "SELECT content, status FROM messages WHERE reply_id = $1",
        uuid.UUID(accepted["reply_id"]),
    )
    assert (stored["content"], stored["status"]) == ("Working on it. ", "interrupted")
