"""A closed chat socket is freed by reference counting, not left to the cyclic collector.

Every object a connection leaves in a reference cycle survives until a full
collection, and a full collection stops every stream on the loop for as long
as it walks them (docs/performance.md): a few hundred sockets used to leave
tens of thousands. The server under test loads a ``sitecustomize`` that, on
SIGUSR1, collects with ``gc.DEBUG_SAVEALL`` and writes down the type of every
object the collector had to free: what reference counting could not.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TokenFactory
from support.client import ChatClient
from support.fake_llm import FakeLLM, Script
from support.metrics import scrape
from support.server import ParleyServer

CENSUS = """
import gc, json, os, signal

def census(signum, frame):
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    names = [f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage]
    gc.set_debug(0)
    gc.garbage.clear()
    path = os.environ["PARLEY_TEST_CENSUS"]
    with open(path + ".part", "w") as out:
        json.dump(names, out)
    os.replace(path + ".part", path)

signal.signal(signal.SIGUSR1, census)
"""
# Whose objects a chat socket makes: the protocols, the ASGI WebSocket, ours.
CONNECTION_MODULES = ("uvicorn.", "websockets.", "starlette.websockets", "parley.transport.")
CHATS = 6
METRICS_TOKEN = "census-metrics-" + "x" * 32
WAIT_SECONDS = 20


@pytest.fixture
def census_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[ParleyServer]:
    (tmp_path / "sitecustomize.py").write_text(CENSUS)
    env = {
        **server_env,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "PARLEY_TEST_CENSUS": str(tmp_path / "census.json"),
        "PARLEY_METRICS_TOKEN": METRICS_TOKEN,
    }
    with ParleyServer(env, name="census") as instance:
        yield instance


def open_sockets(server: ParleyServer) -> float:
    return scrape(server.url, METRICS_TOKEN).value("parley_open_websockets")


def census(server: ParleyServer) -> list[str]:
    """The types of the objects that only the cyclic collector could free."""
    result = Path(server.env["PARLEY_TEST_CENSUS"])
    assert server.process is not None
    server.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + WAIT_SECONDS
    while not result.exists():
        assert time.monotonic() < deadline, f"no census written:\n{server.log()}"
        time.sleep(0.05)  # polling for the file the server writes, not synchronising
    names: list[str] = json.loads(result.read_text())
    result.unlink()  # the next census writes afresh
    return names


async def test_closed_chat_sockets_leave_nothing_for_the_cyclic_collector(
    census_server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    census(census_server)  # what start-up and the first scrape left behind
    for n in range(CHATS):
        fake.enqueue(Script(chunks=[f"answer {n}"]))
        async with await ChatClient.connect(census_server.ws_url, make_token()[1]) as client:
            await client.start(agent="agent_gamma")
            reply = await client.ask(f"question {n}")
            assert reply.done is not None and reply.done["status"] == "complete"
    deadline = time.monotonic() + WAIT_SECONDS
    while open_sockets(census_server) > 0:  # the server has finished with every socket
        assert time.monotonic() < deadline, "the server kept a socket open"
    left = census(census_server)
    from_connections = sorted({name for name in left if name.startswith(CONNECTION_MODULES)})
    assert from_connections == []
