"""The fake vendor itself: scripting, release of held streams, and standalone mode."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.llm.base import ChatMessage, ChatRequest, Finish, StreamEvent, TextDelta
from parley.llm.openai import OpenAIProvider
from support.fake_llm import FakeLLM, Script

REPO = Path(__file__).resolve().parents[1]
HELLO = ChatRequest("gpt-4o-mini", (ChatMessage("user", "hi"),), max_tokens=20)


@pytest.fixture
async def provider(fake: FakeLLM) -> AsyncIterator[OpenAIProvider]:
    client = OpenAIProvider("sk-test", fake.base_url, connect_timeout=2)
    yield client
    await client.aclose()


async def collect(provider: OpenAIProvider, request: ChatRequest = HELLO) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def test_scripts_are_used_in_order_then_the_default(
    provider: OpenAIProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["one"]), Script(chunks=["two"]))
    texts = []
    for _ in range(3):
        events = await collect(provider)
        texts.append("".join(e.text for e in events if isinstance(e, TextDelta)))
    assert texts == ["one", "two", "Hello from the fake model."]
    assert [r.path for r in fake.wait_for_requests(3, timeout=1)] == ["/v1/chat/completions"] * 3


async def test_model_filter_skips_other_models(provider: OpenAIProvider, fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=["for gpt-4o"], model_filter="gpt-4o"))
    other = await collect(provider)  # gpt-4o-mini: not matched, default reply
    assert TextDelta("Hello") in other and fake.pending_scripts == 1
    mine = await collect(provider, ChatRequest("gpt-4o", HELLO.messages, 20))
    assert mine[0] == TextDelta("for gpt-4o") and fake.pending_scripts == 0


async def test_release_finishes_held_streams(provider: OpenAIProvider, fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=["held"], hold=True))
    pending = asyncio.ensure_future(collect(provider))
    await asyncio.to_thread(fake.wait_for_held, 1)
    assert not pending.done()
    fake.release()
    events = await asyncio.wait_for(pending, timeout=2)
    assert events[0] == TextDelta("held") and events[-1] == Finish("stop")
    assert fake.disconnects == 0


def test_waiting_for_requests_that_never_come_times_out(fake: FakeLLM) -> None:
    with pytest.raises(TimeoutError):
        fake.wait_for_requests(1, timeout=0.05)


async def test_standalone_process_serves_the_default_script() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tests.support.fake_llm", "--port", str(port)],
        *["--words", "3", "--delay", "0"],
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        banner = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert f":{port}/v1" in banner.decode()
        client = OpenAIProvider(None, f"http://127.0.0.1:{port}/v1")
        events = await collect(client)
        await client.aclose()
        assert events[:3] == [TextDelta("word0"), TextDelta(" word1"), TextDelta(" word2")]
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
