"""Metrics under ``parley serve --workers 2``: one scrape sees every worker's counts.

Which worker accepts a connection is the kernel's choice, and it tends to
pick the same one again and again. To put one connection on each worker for
certain, the test pauses the other worker (SIGSTOP, then SIGCONT) while it
connects. A reply on each connection then checks, through the reply's lease
in Redis, that two instances did run them, and a scrape of either port,
whichever process answers it, must count both.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from redis.asyncio import Redis

from conftest import KEYS, TokenFactory
from parley.observability.exposition import forget_dead_processes
from parley.observability.workers import (
    LOCK_FILE,
    METRICS_FOLDER,
    remove_stale_directories,
    worker_metrics_directory,
)
from support.client import ChatClient
from support.fake_llm import FakeLLM, Script
from support.metrics import Scrape, scrape
from support.server import ParleyServer, free_port

METRICS_TOKEN = "workers-token-0123456789abcdef"
MINI = "openai:gpt-4o-mini"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers-data")


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def workers(
    server_env: dict[str, str], data_dir: Path, metrics_port: int
) -> Iterator[ParleyServer]:
    env = {
        **server_env,
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_METRICS_TOKEN": METRICS_TOKEN,
        "PARLEY_METRICS_PORT": str(metrics_port),
    }
    with ParleyServer(env, name="parley-workers", args=["--workers", "2"]) as instance:
        yield instance


async def test_one_scrape_counts_the_replies_of_both_workers(
    workers: ParleyServer,
    metrics_port: int,
    fake: FakeLLM,
    make_token: TokenFactory,
    redis: Redis,
) -> None:
    pids = worker_pids(workers)
    assert len(pids) == 2
    before = await asyncio.to_thread(scrape, workers.url, METRICS_TOKEN)
    async with AsyncExitStack() as sockets:
        owners = set()
        for pid in pids:
            with only_running(pid, among=pids):
                client = await ChatClient.connect(workers.ws_url, make_token()[1])
            await sockets.enter_async_context(client)
            owners.add(await held_reply(client, fake, redis))
        assert len(owners) == 2  # two instances ran the replies
        during = await asyncio.to_thread(scrape, workers.url, METRICS_TOKEN)
        assert during.value("parley_open_websockets") - before.value("parley_open_websockets") == 2

    for answer in await asyncio.gather(
        asyncio.to_thread(scrape, workers.url, METRICS_TOKEN),  # a worker answers
        asyncio.to_thread(scrape, f"http://127.0.0.1:{metrics_port}", METRICS_TOKEN),  # the parent
    ):
        assert counted(answer) - counted(before) == 2
        durations = "parley_reply_duration_seconds_count"
        assert (
            answer.value(durations, agent="agent_gamma")
            - before.value(durations, agent="agent_gamma")
            == 2
        )


def worker_pids(server: ParleyServer) -> list[int]:
    """uvicorn's workers: the children of ``parley serve`` started by multiprocessing's spawn."""
    assert server.process is not None
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile
            stat = (entry / "stat").read_text()
            parent = int(stat.rpartition(")")[2].split()[1])  # the field after the state
            command = (entry / "cmdline").read_bytes()
            if parent == server.process.pid and b"spawn_main" in command:
                workers.append(int(entry.name))
    return sorted(workers)


@contextlib.contextmanager
def only_running(pid: int, *, among: list[int]) -> Iterator[None]:
    """Pause the other workers, so that only ``pid`` can accept connections."""
    paused = [other for other in among if other != pid]
    try:
        for other in paused:
            os.kill(other, signal.SIGSTOP)
        yield
    finally:
        for other in paused:
            os.kill(other, signal.SIGCONT)


async def held_reply(client: ChatClient, fake: FakeLLM, redis: Redis) -> str:
    """Run one reply, held open until its owner is read from its lease; the owner."""
    fake.enqueue(Script(chunks=["Held", " reply."], hold=True))
    await client.start(agent="agent_gamma")
    accepted = await client.say("Which worker are you?")
    await client.reply(accepted["reply_id"], until_seq=1)
    owner = await redis.get(KEYS.lease(accepted["reply_id"]))
    fake.release()
    reply = await client.reply(accepted["reply_id"])
    assert reply.done is not None and reply.done["status"] == "complete"
    assert owner is not None
    return owner.decode()


def counted(scraped: Scrape) -> float:
    return scraped.value("parley_replies_total", agent="agent_gamma", model=MINI, status="complete")


def test_the_metrics_port_needs_the_token_too(workers: ParleyServer, metrics_port: int) -> None:
    import httpx

    url = f"http://127.0.0.1:{metrics_port}"
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
    assert httpx.get(f"{url}/other", timeout=10).status_code == 404


def test_the_workers_share_one_directory_removed_at_exit(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, "PARLEY_DATA_DIR": str(tmp_path), "PARLEY_METRICS_TOKEN": METRICS_TOKEN}
    stale = tmp_path / METRICS_FOLDER / "serve-killed"  # as a killed server leaves it
    stale.mkdir(parents=True)
    (stale / LOCK_FILE).touch()
    (stale / "counter_12345.db").write_bytes(b"\0" * 16)
    with ParleyServer(env, name="parley-workers-dir", args=["--workers", "2"]):
        [directory] = (tmp_path / METRICS_FOLDER).glob("serve-*")
        assert directory != stale
        assert any(directory.glob("*.db"))  # the workers write there
    assert list((tmp_path / METRICS_FOLDER).iterdir()) == []


def test_directories_of_running_servers_are_kept(tmp_path: Path) -> None:
    with worker_metrics_directory(tmp_path) as mine:
        (mine / "counter_1.db").touch()
        assert remove_stale_directories(tmp_path / METRICS_FOLDER) == []
        assert mine.is_dir()
        # Another process holding it: its lock is an open file description of its own.
        other = os.open(mine / LOCK_FILE, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    assert not mine.exists()


def test_gauges_of_dead_processes_are_dropped(tmp_path: Path) -> None:
    gone = 2**22 + 1  # above Linux's highest pid: no such process
    alive = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    dead = tmp_path / f"gauge_livesum_{gone}.db"
    counter = tmp_path / f"counter_{gone}.db"  # a dead worker's counts stay counted
    for path in (alive, dead, counter):
        path.touch()
    forget_dead_processes(tmp_path)
    assert alive.exists() and counter.exists()
    assert not dead.exists()
