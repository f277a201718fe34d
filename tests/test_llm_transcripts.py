"""Every recorded vendor stream, replayed over HTTP to the provider that speaks its wire.

The transcripts (shared/vendorwire/transcripts, sources in SOURCES.json) are
real streams from OpenAI, Azure, Anthropic, DeepSeek, Groq, Mistral, xAI,
Perplexity, Ollama, llama.cpp and OpenRouter. What each must produce was read
off the recording by hand and is written out below, not derived by a parser.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parley.errors import UpstreamUnavailable
from parley.llm.anthropic import REFUSAL_TEXT, AnthropicProvider
from parley.llm.base import (
    CallRecord,
    ChatMessage,
    ChatRequest,
    Finish,
    ModelRef,
    Provider,
    ProviderError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from parley.llm.demo import DemoProvider
from parley.llm.models import PriceTable
from parley.llm.openai import OpenAIProvider
from parley.llm.router import CallFinished, LLMRouter, RetryPolicy, Timeouts
from parley.llm.tokens import TokenCounter
from support.fake_llm import FakeLLM, Script

TRANSCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "vendorwire" / "transcripts"
if not (TRANSCRIPTS / "SOURCES.json").is_file():
    pytest.skip(f"no recorded transcripts at {TRANSCRIPTS}", allow_module_level=True)
SOURCES = json.loads((TRANSCRIPTS / "SOURCES.json").read_text())

WEATHER = ToolSpec("weather", "The weather in a city.", {"type": "object", "properties": {}})
REQUEST_MESSAGES = (ChatMessage("user", "What is the weather in San Francisco?"),)


@dataclass(frozen=True)
class Text:
    """A long reply, by its length and ends."""

    length: int
    start: str
    end: str

    def matches(self, text: str) -> bool:
        return len(text) == self.length and text.startswith(self.start) and text.endswith(self.end)


@dataclass(frozen=True)
class Expected:
    text: str | Text
    finish: str | None  # None: the stream fails
    usage: tuple[int, int] | None  # the vendor's (prompt, completion); None: it sent none
    calls: tuple[tuple[str, str, object], ...] = ()  # (id, name, parsed arguments)
    error: str | None = None  # what the (transient) failure says
    # A stream that broke after the vendor counted the prompt: that count is kept.
    reported_prompt: int | None = None


WEATHER_REPLY = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)
MISTRAL_REPLY = "Hello, world! This is a test response."

EXPECTED: dict[str, Expected] = {
    # -- OpenAI wire --------------------------------------------------------------
    "openai-gpt4o-usage": Expected(WEATHER_REPLY, "stop", (14, 30)),
    "openai-compatible-no-usage": Expected(WEATHER_REPLY, "stop", None),
    "openai-gpt41nano-text": Expected(
        Text(1724, "**Holiday Name:** Harmony Day\n\n", "human experiences and mutual respect."),
        "stop",
        (16, 300),
    ),
    # A refusal streams in delta.refusal, never in content: it must still be read.
    "openai-gpt4o-refusal": Expected(
        "I'm sorry, I can't assist with that request.", "stop", (79, 11)
    ),
    "openai-gpt4o-length": Expected('{"', "length", (79, 1)),
    # Two parallel calls, arguments in fragments, id and name only in each first piece.
    "openai-gpt4o-tool-calls": Expected(
        "",
        "tool_calls",
        (149, 60),
        calls=(
            (
                "call_JMW1whyEaYG438VE1OIflxA2",
                "GetWeatherArgs",
                {"city": "Edinburgh", "country": "GB", "units": "c"},
            ),
            (
                "call_DNYTawLBoN8fj3KN6qU9N1Ou",
                "get_stock_price",
                {"ticker": "AAPL", "exchange": "NASDAQ"},
            ),
        ),
    ),
    # Prompt filter results in a first chunk without choices.
    "azure-model-router": Expected("Capital of Denmark.", "stop", (15, 78)),
    # reasoning_content is the model thinking, not the reply.
    "deepseek-reasoner": Expected('The word "strawberry" contains three "r"s.', "stop", (18, 219)),
    "deepseek-tool-call": Expected(
        "",
        "tool_calls",
        (339, 83),
        calls=(("call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather", {"location": "San Francisco"}),),
    ),
    "groq-text": Expected(
        Text(3189, 'Introducing "Luminaria" - a new holiday ', "the magic of light."),
        "stop",
        (45, 662),
    ),
    "groq-reasoning": Expected(
        Text(347, 'The word **"strawberry"** is spelled as ', "**Final Answer**: $\\boxed{3}$"),
        "stop",
        (17, 1107),
    ),
    # The whole call in one piece; usage in the finish chunk.
    "groq-tool-call": Expected("", "tool_calls", (210, 15), calls=(("tk85n1k4m", "weather", {}),)),
    # xAI leaves its 340 reasoning tokens out of completion_tokens (2) but bills
    # them; total_tokens (354) has them.
    "xai-grok3mini-reasoning": Expected("Grok", "stop", (12, 342)),
    "mistral-text": Expected(MISTRAL_REPLY, "stop", (13, 8)),
    # Keep-alive comments and CRLF line ends.
    "openrouter-comments-crlf": Expected(MISTRAL_REPLY, "stop", (13, 8)),
    # Usage in every chunk, a running total: the last one counts.
    "perplexity-cumulative-usage": Expected("**EcoVista Day**[1][5]", "stop", (11, 434)),
    # "usage": {} chunks (not a count of zero), then the real count after the finish.
    "ollama-empty-then-late-usage": Expected(
        Text(176, "Higress 是一个基于 Istio 的高性能服务网格", "满足高并发场景下的需求。"),
        "stop",
        (372, 9),
    ),
    # No usage at all, although it was asked for.
    "local-llamacpp-smollm2": Expected(
        "Karma: A simple yet powerful word in the universe.", "stop", None
    ),
    # -- Anthropic wire -----------------------------------------------------------
    "anthropic-sdk-basic": Expected("Hello there!", "end_turn", (11, 6)),
    "anthropic-text-cache-fields": Expected(
        "Hello! I'm doing well, thank you for asking. How are you doing today? "
        "Is there anything I can help you with?",
        "end_turn",
        (12, 30),
    ),
    # message_delta repeats input_tokens, revised: the later count wins.
    "anthropic-delta-input-tokens": Expected("pong", "end_turn", (61, 2)),
    # Thinking deltas are not the reply.
    "anthropic-thinking": Expected("925 ÷ 5 = 185", "end_turn", (69, 53)),
    # Text, then a tool_use block whose only input delta is "".
    "anthropic-text-then-tool-use": Expected(
        "I'll update the issue list for you.",
        "tool_use",
        (565, 48),
        calls=(("toolu_01QE1WLsSVp5hy5Q3GmGTmjP", "updateIssueList", {}),),
    ),
    # A refusal without a word: the user must not get an empty reply.
    "anthropic-sdk-refusal": Expected(REFUSAL_TEXT, "refusal", (20, 0)),
    # A refusal after some text: that text is the reply.
    "anthropic-sdk-thinking-refusal": Expected("Hi", "refusal", (28, 106)),
    "anthropic-overloaded-first-event": Expected(
        "", None, None, error="stream error: overloaded_error: Overloaded"
    ),
    "anthropic-overloaded-mid-stream": Expected(
        "Hello there",
        None,
        None,
        error="stream error: overloaded_error: Overloaded",
        reported_prompt=11,
    ),
}

NAMES = sorted(EXPECTED)


def wire(name: str) -> str:
    return str(SOURCES[name]["wire"])


def path(name: str) -> Path:
    return TRANSCRIPTS / f"{name}.sse"


@pytest.fixture
async def providers(fake: FakeLLM) -> AsyncIterator[dict[str, Provider]]:
    made: dict[str, Provider] = {
        "openai": OpenAIProvider("sk-test-transcripts", fake.base_url, connect_timeout=2),
        "anthropic": AnthropicProvider("sk-ant-test", fake.anthropic_base_url, connect_timeout=2),
    }
    yield made
    for provider in made.values():
        await provider.aclose()


async def replay(provider: Provider) -> tuple[list[StreamEvent], ProviderError | None]:
    events: list[StreamEvent] = []
    request = ChatRequest("model", REQUEST_MESSAGES, max_tokens=4096, tools=(WEATHER,))
    try:
        async for event in provider.stream(request):
            events.append(event)
    except ProviderError as error:
        return events, error
    return events, None


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def calls_of(calls: list[ToolCall] | tuple[ToolCall, ...]) -> list[tuple[str, str, object]]:
    return [(c.id, c.name, json.loads(c.arguments)) for c in calls]


def assert_text(expected: str | Text, text: str) -> None:
    if isinstance(expected, Text):
        assert expected.matches(text), (len(text), text[:60], text[-60:])
    else:
        assert text == expected


def test_every_transcript_has_an_expectation() -> None:
    recorded = {p.stem for p in TRANSCRIPTS.glob("*.sse")}
    assert recorded == set(EXPECTED) == set(SOURCES)
    assert {wire(name) for name in NAMES} == {"openai", "anthropic"}


@pytest.mark.parametrize("piece", [None, 61], ids=["by-event", "61-byte-writes"])
@pytest.mark.parametrize("name", NAMES)
async def test_transcript_through_its_provider(
    name: str, piece: int | None, fake: FakeLLM, providers: dict[str, Provider]
) -> None:
    # 61-byte writes split lines, JSON and multi-byte characters between reads.
    fake.enqueue(Script(raw_sse=path(name), raw_piece=piece))
    expected = EXPECTED[name]
    events, error = await replay(providers[wire(name)])

    assert_text(expected.text, text_of(events))
    assert calls_of([e for e in events if isinstance(e, ToolCall)]) == list(expected.calls)
    if expected.error is not None:
        assert error is not None and error.transient and str(error) == expected.error
        assert not any(isinstance(e, Usage | Finish) for e in events)
        reported = error.usage.prompt_tokens if error.usage else None
        assert reported == expected.reported_prompt
        return
    assert error is None
    usage = [(e.prompt_tokens, e.completion_tokens) for e in events if isinstance(e, Usage)]
    assert usage == ([] if expected.usage is None else [expected.usage])
    # Output first, then at most one Usage, then exactly one Finish.
    kinds = [type(e).__name__ for e in events]
    tail = ["Usage", "Finish"] if expected.usage is not None else ["Finish"]
    assert kinds[-len(tail) :] == tail
    assert set(kinds[: -len(tail)]) <= {"TextDelta", "ToolCall"}
    assert events[-1] == Finish(expected.finish or "")


@pytest.fixture
async def router(providers: dict[str, Provider]) -> LLMRouter:
    counter = TokenCounter()
    return LLMRouter(
        {**providers, "demo": DemoProvider(counter=counter)},
        PriceTable.defaults(),
        counter,
        RetryPolicy(attempts=1),
        Timeouts(connect=2, first_token=10, idle=10),
    )


@pytest.mark.parametrize("name", NAMES)
async def test_transcript_through_the_router(name: str, fake: FakeLLM, router: LLMRouter) -> None:
    fake.enqueue(Script(raw_sse=path(name)))
    expected = EXPECTED[name]
    model = ModelRef("openai", "gpt-4o") if wire(name) == "openai" else ModelRef("anthropic", "m")
    texts: list[str] = []
    calls: list[ToolCall] = []
    records: list[CallRecord] = []
    unavailable = False
    stream = router.stream(
        [model], REQUEST_MESSAGES, max_tokens=4096, temperature=None,
        cancel=asyncio.Event(), tools=[WEATHER],
    )  # fmt: skip
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                texts.append(event.text)
            elif isinstance(event, ToolCall):
                calls.append(event)
            else:
                assert isinstance(event, CallFinished)
                records.append(event.record)
    except UpstreamUnavailable:
        unavailable = True

    [record] = records
    assert_text(expected.text, "".join(texts))
    assert record.text == "".join(texts)
    assert calls_of(calls) == calls_of(record.tool_calls) == list(expected.calls)
    assert not record.cut_off
    if expected.error is not None:
        assert record.status == "failed" and record.error == expected.error
        # Failing before any output, it would be retried (here: no attempts left).
        assert unavailable == (not texts)
        if expected.reported_prompt is not None:  # the vendor's count, the rest ours
            assert (record.prompt_tokens, record.estimated) == (expected.reported_prompt, True)
            assert record.completion_tokens == router.counter.for_model(model).count(record.text)
        return
    assert (record.status, record.finish_reason) == ("complete", expected.finish)
    if expected.usage is not None:
        assert (record.prompt_tokens, record.completion_tokens) == expected.usage
        assert not record.estimated
    else:
        tokens = router.counter.for_model(model)
        prompt = tokens.count_messages(REQUEST_MESSAGES) + tokens.count_tools([WEATHER])
        assert record.estimated
        assert (record.prompt_tokens, record.completion_tokens) == (
            prompt,
            tokens.count(record.text),
        )
