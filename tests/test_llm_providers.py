"""Both vendor providers against a real HTTP fake, plus the offline demo provider."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from parley.llm.anthropic import TRIMMED_PLACEHOLDER, AnthropicProvider, to_anthropic
from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ModelRef,
    Provider,
    ProviderError,
    StreamEvent,
    TextDelta,
    Usage,
)
from parley.llm.demo import LABEL, DemoProvider, demo_reply
from parley.llm.openai import OpenAIProvider
from parley.llm.tokens import TokenCounter
from support.fake_llm import FakeLLM, Script

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")

OPENAI_KEY = "sk-proj-test-abcdef0123456789"
ANTHROPIC_KEY = "sk-ant-api03-test-abcdef0123456789"
CONVERSATION = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello!"),
    ChatMessage("user", "What is 2+2?"),
)


@pytest.fixture
async def openai_provider(fake: FakeLLM) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(OPENAI_KEY, fake.base_url, connect_timeout=2)
    yield provider
    await provider.aclose()


@pytest.fixture
async def anthropic_provider(fake: FakeLLM) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(ANTHROPIC_KEY, fake.anthropic_base_url, connect_timeout=2)
    yield provider
    await provider.aclose()


def request(model: str, *, temperature: float | None = None) -> ChatRequest:
    return ChatRequest(model, CONVERSATION, max_tokens=100, temperature=temperature)


async def events_of(provider: Provider, chat: ChatRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(chat)]


async def stream_error(provider: Provider, chat: ChatRequest) -> ProviderError:
    """The ProviderError that streaming ``chat`` raises."""
    with pytest.raises(ProviderError) as caught:
        await events_of(provider, chat)
    return caught.value


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# -- OpenAI --------------------------------------------------------------------


async def test_openai_streams_text_usage_and_finish(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["Four", "."], prompt_tokens=30, completion_tokens=2))
    events = await events_of(openai_provider, request("gpt-4o-mini", temperature=0.2))

    assert events == [TextDelta("Four"), TextDelta("."), Usage(30, 2), Finish("stop")]
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("parley/")
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert (sent.body["max_tokens"], sent.body["temperature"]) == (100, 0.2)
    assert sent.body["messages"] == [{"role": m.role, "content": m.content} for m in CONVERSATION]


async def test_openai_reasoning_models_get_max_completion_tokens(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    await events_of(openai_provider, request("o4-mini", temperature=0.2))
    body = fake.requests[0].body
    assert body["max_completion_tokens"] == 100
    assert "max_tokens" not in body and "temperature" not in body


async def test_openai_without_temperature_sends_none(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    await events_of(openai_provider, request("gpt-4o-mini"))
    assert "temperature" not in fake.requests[0].body


async def test_openai_compatible_server_without_key_or_usage(fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=["local"], include_usage=False, finish_reason="length"))
    provider = OpenAIProvider(None, fake.base_url)
    try:
        events = await events_of(provider, request("llama3.1:8b"))
    finally:
        await provider.aclose()

    assert events == [TextDelta("local"), Finish("length")]
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize(
    "usage", [{}, {"queue_time": 0.04}, {"prompt_tokens": 5}, {"prompt_tokens": None}]
)
async def test_openai_usage_without_counts_is_no_usage(
    openai_provider: OpenAIProvider, fake: FakeLLM, usage: dict[str, object]
) -> None:
    # Not a count of zero tokens: the router must estimate instead.
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    fake.enqueue(Script(raw_sse=body.encode()))
    events = await events_of(openai_provider, request("llama3.1:8b"))
    assert events == [TextDelta("Hi"), Finish("stop")]


@pytest.mark.parametrize(
    ("status", "transient"),
    [(400, False), (401, False), (403, False), (404, False), (429, True), (500, True), (503, True)],
)
async def test_openai_status_errors_are_classified(
    openai_provider: OpenAIProvider, fake: FakeLLM, status: int, transient: bool
) -> None:
    fake.enqueue(Script(status=status, error_message="nope"))
    error = await stream_error(openai_provider, request("gpt-4o-mini"))
    assert (error.status, error.transient) == (status, transient)
    assert str(error) == f"HTTP {status}: nope"


async def test_openai_error_text_is_redacted(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(status=401, error_message=f"Incorrect API key provided: {OPENAI_KEY}."))
    error = await stream_error(openai_provider, request("gpt-4o-mini"))
    assert OPENAI_KEY not in str(error)
    assert "[redacted]" in str(error)


async def test_openai_non_json_error_body_keeps_the_status(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(status=500, error_body="<html>upstream exploded</html>\n"))
    error = await stream_error(openai_provider, request("gpt-4o-mini"))
    assert (error.status, error.transient) == (500, True)
    assert str(error) == "HTTP 500: <html>upstream exploded</html>"


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_an_event_longer_than_the_read_buffer_streams_whole(
    openai_provider: OpenAIProvider,
    anthropic_provider: AnthropicProvider,
    fake: FakeLLM,
    vendor: str,
) -> None:
    # One 1 MiB data: line, past aiohttp's own readline limit (128 KiB to 512 KiB).
    long = "".join(chr(0x41 + i % 26) for i in range(1024 * 1024))
    fake.enqueue(Script(chunks=["a", long, "b"]))
    provider: Provider = openai_provider if vendor == "openai" else anthropic_provider
    events = await events_of(provider, request("gpt-4o-mini"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", long, "b"]
    assert isinstance(events[-1], Finish)


async def test_abandoning_a_stream_closes_the_connection(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["first", "second"], hold=True))
    stream = openai_provider.stream(request("gpt-4o-mini"))
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == TextDelta("first")
    await stream.aclose()  # e.g. the user cancelled: the vendor must stop generating
    await asyncio.to_thread(fake.wait_for_disconnects, 1)


async def test_a_finished_stream_leaves_its_connection_for_the_next(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    # The body ends a little after [DONE], as over a real network: still reused.
    fake.enqueue(*[Script(end_delay=0.05) for _ in range(3)])
    for _ in range(3):
        assert (await events_of(openai_provider, request("gpt-4o-mini")))[-1] == Finish("stop")
    assert len({sent.client_port for sent in fake.requests}) == 1


async def test_openai_dropped_connection_mid_stream_is_transient(
    openai_provider: OpenAIProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["a", "b", "c"], break_after=1))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in openai_provider.stream(request("gpt-4o-mini")):
            seen.append(event)
    assert seen == [TextDelta("a")]
    assert caught.value.transient and caught.value.status is None


async def test_events_that_arrive_with_the_break_are_not_lost() -> None:
    # The last event and the break reach aiohttp while nobody is reading (the
    # relay is busy elsewhere); its readers raise the break before handing over
    # data that arrived ahead of it, and the vendor's last words were lost.
    def chunk(text: str) -> bytes:
        event = {"choices": [{"index": 0, "delta": {"content": text}}]}
        data = f"data: {json.dumps(event)}\n\n".encode()
        return b"%x\r\n%s\r\n" % (len(data), data)

    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    head += b"transfer-encoding: chunked\r\n\r\n"
    first_read, broken = asyncio.Event(), asyncio.Event()

    async def vendor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + chunk("Partial "))
        await first_read.wait()
        writer.write(chunk("answer "))  # and no last chunk: the body is cut off
        writer.close()
        await writer.wait_closed()
        broken.set()

    server = await asyncio.start_server(vendor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = OpenAIProvider(OPENAI_KEY, f"http://127.0.0.1:{port}/v1", connect_timeout=2)
    seen: list[StreamEvent] = []
    try:
        with pytest.raises(ProviderError) as caught:
            async for event in provider.stream(request("gpt-4o-mini")):
                seen.append(event)
                if len(seen) == 1:
                    first_read.set()
                    await broken.wait()
                    # The bytes and the FIN are in the socket's buffer now; a few
                    # turns of the loop let aiohttp take in both before we read.
                    for _ in range(10):
                        await asyncio.sleep(0)
    finally:
        await provider.aclose()
        server.close()
    assert seen == [TextDelta("Partial "), TextDelta("answer ")]
    assert caught.value.transient


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIProvider(OPENAI_KEY, f"http://127.0.0.1:{port}/v1", connect_timeout=2)
    try:
        error = await stream_error(provider, request("gpt-4o-mini"))
    finally:
        await provider.aclose()
    assert error.transient and "connection" in str(error)


async def test_proxy_from_the_environment_is_used(
    fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{fake.port}")
    # Nothing resolves vendor.invalid: only the proxy (the fake) can answer.
    provider = OpenAIProvider(OPENAI_KEY, "http://vendor.invalid/v1", connect_timeout=2)
    try:
        events = await events_of(provider, request("gpt-4o-mini"))
    finally:
        await provider.aclose()
    assert text_of(events) == "Hello from the fake model."
    assert fake.requests[0].headers["host"] == "vendor.invalid"


# -- Anthropic -----------------------------------------------------------------


async def test_anthropic_streams_text_usage_and_finish(
    anthropic_provider: AnthropicProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["Fo", "ur"], prompt_tokens=25, completion_tokens=4))
    events = await events_of(anthropic_provider, request("claude-haiku-4-5", temperature=0.3))

    assert events == [TextDelta("Fo"), TextDelta("ur"), Usage(25, 4), Finish("end_turn")]
    [sent] = fake.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["system"] == "Be brief."
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_tokens"] == 100 and sent.body["stream"] is True
    assert "tools" not in sent.body
    assert sent.body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]


@pytest.mark.parametrize(
    ("status", "transient"),
    [(400, False), (401, False), (404, False), (429, True), (500, True), (529, True)],
)
async def test_anthropic_status_errors_are_classified(
    anthropic_provider: AnthropicProvider, fake: FakeLLM, status: int, transient: bool
) -> None:
    fake.enqueue(Script(status=status, error_message="nope"))
    error = await stream_error(anthropic_provider, request("claude-haiku-4-5"))
    assert (error.status, error.transient) == (status, transient)
    assert str(error) == f"HTTP {status}: nope"


async def test_anthropic_error_body_echoing_the_key_is_redacted(
    anthropic_provider: AnthropicProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(status=502, error_body=f"bad gateway for x-api-key {ANTHROPIC_KEY}"))
    error = await stream_error(anthropic_provider, request("claude-haiku-4-5"))
    assert (error.status, error.transient) == (502, True)
    assert ANTHROPIC_KEY not in str(error) and "[redacted]" in str(error)


async def test_anthropic_dropped_connection_mid_stream_is_transient(
    anthropic_provider: AnthropicProvider, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["a", "b"], break_after=2))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in anthropic_provider.stream(request("claude-haiku-4-5")):
            seen.append(event)
    assert seen == [TextDelta("a"), TextDelta("b")]
    assert caught.value.transient


def test_anthropic_prompt_merges_turns_and_starts_with_the_user() -> None:
    prompt = to_anthropic(
        [
            ChatMessage("system", "Rule one."),
            ChatMessage("assistant", "Earlier answer."),
            ChatMessage("user", "First."),
            ChatMessage("user", "Second."),
            ChatMessage("assistant", "   "),
            ChatMessage("system", "Rule two."),
        ]
    )
    assert prompt.system == "Rule one.\n\nRule two."
    assert prompt.messages == (
        ("user", TRIMMED_PLACEHOLDER),
        ("assistant", "Earlier answer."),
        ("user", "First.\n\nSecond."),
    )


# -- Demo ----------------------------------------------------------------------


async def test_demo_reply_is_labelled_exact_and_counted() -> None:
    counter = TokenCounter()
    provider = DemoProvider(0, counter=counter)
    # Room for the whole reply (its Markdown help takes ~140 tokens).
    events = await events_of(provider, ChatRequest("echo", CONVERSATION, max_tokens=500))

    text = text_of(events)
    assert text == demo_reply(CONVERSATION)
    assert text.startswith(LABEL) and "“What is 2+2?”" in text
    assert "OPENAI_API_KEY" in text and "ANTHROPIC_API_KEY" in text and "OPENAI_BASE_URL" in text
    assert len([e for e in events if isinstance(e, TextDelta)]) > 10  # streamed word by word
    tokens = counter.for_model(ModelRef("demo", "echo"))
    assert events[-2:] == [
        Usage(tokens.count_messages(CONVERSATION), tokens.count(text)),
        Finish("stop"),
    ]


async def test_demo_reply_is_deterministic_and_summarises_long_input() -> None:
    chat = ChatRequest("echo", (ChatMessage("user", "word " * 100),), max_tokens=500)
    first = text_of(await events_of(DemoProvider(), chat))
    assert first == text_of(await events_of(DemoProvider(), chat))
    assert "…”" in first and len(first) < 600


async def test_demo_respects_max_tokens() -> None:
    chat = ChatRequest("echo", (ChatMessage("user", "hello"),), max_tokens=8)
    events = await events_of(DemoProvider(), chat)
    assert events[-1] == Finish("length")
    usage = events[-2]
    assert isinstance(usage, Usage) and 0 < usage.completion_tokens <= 8
