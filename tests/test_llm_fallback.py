"""The router across providers: Retry-After, per-model windows, chains, breaks mid-stream.

Waits between attempts go through a fake pause that records what was asked
and returns at once: the test checks the wait the router chose, not the clock.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from parley.config import Settings
from parley.errors import UpstreamUnavailable
from parley.llm.anthropic import AnthropicProvider
from parley.llm.base import CallRecord, ChatMessage, ModelRef, Provider, TextDelta
from parley.llm.failures import retry_after
from parley.llm.models import DEFAULT_FACTS, ModelFacts, PriceTable
from parley.llm.openai import OpenAIProvider
from parley.llm.providers import PROVIDERS_FILE
from parley.llm.router import CallFinished, LLMRouter, RetryPolicy, Timeouts
from parley.llm.tokens import TokenCounter
from support.fake_llm import FakeLLM, Script

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")

GPT4O = ModelRef("openai", "gpt-4o")
MINI = ModelRef("openai", "gpt-4o-mini")
HAIKU = ModelRef("anthropic", "claude-haiku-4-5")
MESSAGES = (ChatMessage("system", "You are terse."), ChatMessage("user", "Say hello."))


class RecordedPauses:
    """The router's pause between attempts, faked: records each wait, returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, cancel: asyncio.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        return cancel.is_set()


MakeRouter = Callable[..., LLMRouter]


@pytest.fixture
async def make_router(fake: FakeLLM) -> AsyncIterator[MakeRouter]:
    made: list[LLMRouter] = []

    def make(
        pauses: RecordedPauses,
        *,
        attempts: int = 3,
        first_token: float = 60.0,
        prices: PriceTable | None = None,
    ) -> LLMRouter:
        providers: dict[str, Provider] = {
            "openai": OpenAIProvider("sk-test-0123456789", fake.base_url, connect_timeout=2),
            "anthropic": AnthropicProvider("sk-ant-test", fake.anthropic_base_url, 2),
        }
        router = LLMRouter(
            providers,
            prices or PriceTable.defaults(),
            TokenCounter(),
            RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=8.0),
            Timeouts(connect=2, first_token=first_token, idle=10),
            rng=random.Random(7),
            pause=pauses,
        )
        made.append(router)
        return router

    yield make
    for router in made:
        await router.aclose()


async def run(
    router: LLMRouter, models: Sequence[ModelRef], messages: Sequence[ChatMessage] = MESSAGES
) -> tuple[str, list[CallRecord]]:
    text: list[str] = []
    records: list[CallRecord] = []
    stream = router.stream(
        models, messages, max_tokens=64, temperature=None, cancel=asyncio.Event()
    )
    async for event in stream:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, CallFinished):
            records.append(event.record)
    return "".join(text), records


# -- Retry-After ---------------------------------------------------------------------


async def test_retry_after_seconds_is_waited_before_the_retry(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    pauses = RecordedPauses()
    fake.enqueue(Script(status=429, headers={"retry-after": "20"}), Script(chunks=["Hi"]))

    text, records = await run(make_router(pauses), [MINI])

    assert text == "Hi"
    assert [r.status for r in records] == ["failed", "complete"]
    # Full-jitter backoff alone would have been at most 0.5 s.
    assert pauses.waits == [20.0]


async def test_retry_after_as_an_http_date(make_router: MakeRouter, fake: FakeLLM) -> None:
    pauses = RecordedPauses()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake.enqueue(Script(status=503, headers={"retry-after": when}), Script(chunks=["Hi"]))

    text, _ = await run(make_router(pauses), [MINI])

    assert text == "Hi"
    [waited] = pauses.waits
    assert 25 < waited <= 30  # the date, less the time the request took


async def test_retry_after_ms_wins_and_a_short_one_keeps_the_backoff(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    pauses = RecordedPauses()
    fake.enqueue(
        Script(status=429, headers={"retry-after-ms": "1500", "retry-after": "2"}),
        Script(status=429, headers={"retry-after": "0"}),
        Script(chunks=["Hi"]),
    )

    await run(make_router(pauses), [MINI])

    first, second = pauses.waits
    assert first == 1.5
    # "0" allows the retry at once; the jittered backoff still spreads clients out.
    assert 0 <= second <= 1.0


async def test_a_wait_past_the_first_token_timeout_falls_back_at_once(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    pauses = RecordedPauses()
    fake.enqueue(
        Script(status=429, headers={"retry-after": "120"}, model_filter="gpt-4o"),
        Script(chunks=["From Claude"], model_filter="claude-haiku-4-5"),
    )

    text, records = await run(make_router(pauses, first_token=60), [GPT4O, HAIKU])

    assert text == "From Claude"
    assert [(str(r.model), r.status) for r in records] == [
        ("openai:gpt-4o", "failed"),
        ("anthropic:claude-haiku-4-5", "complete"),
    ]
    assert pauses.waits == []  # neither waited 120 s nor retried gpt-4o


async def test_a_wait_past_the_timeout_with_no_model_left_fails(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    pauses = RecordedPauses()
    fake.enqueue(Script(status=429, headers={"retry-after": "3600"}))

    with pytest.raises(UpstreamUnavailable):
        await run(make_router(pauses, first_token=60), [MINI])
    assert pauses.waits == [] and len(fake.requests) == 1


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, 10.0),
        ({"retry-after": "Wed, 31 Dec 2025 23:59:00 GMT"}, 0.0),  # already past
        ({"retry-after": "-3"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert retry_after(headers, now=now) == seconds


# -- context windows along a chain -----------------------------------------------------


async def test_each_fallback_model_gets_the_prompt_fitted_to_its_window(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    small = ModelRef("anthropic", "small-window")
    prices = PriceTable({**DEFAULT_FACTS, "anthropic:small-window": ModelFacts(400, 0, 0)})
    history = [
        ChatMessage("user" if n % 2 == 0 else "assistant", f"turn {n}: " + "words " * 40)
        for n in range(8)
    ]
    messages = (MESSAGES[0], *history, ChatMessage("user", "And now?"))
    fake.enqueue(
        Script(status=500, model_filter="gpt-4o"),
        Script(chunks=["Short."], model_filter="small-window"),
    )

    text, records = await run(
        make_router(RecordedPauses(), attempts=1, prices=prices), [GPT4O, small], messages
    )

    assert text == "Short."
    to_gpt4o, to_small = fake.requests
    assert len(to_gpt4o.body["messages"]) == len(messages)  # 128k: everything fits
    sent = to_small.body["messages"]
    # The system prompt and the newest question stay; the oldest turns go, whole,
    # and what is left starts with a user turn.
    assert to_small.body["system"] == "You are terse."
    assert sent[-1] == {"role": "user", "content": "And now?"}
    assert 1 < len(sent) < len(history) + 1
    assert sent[0]["role"] == "user" and sent[0]["content"].startswith("turn ")
    tokens = TokenCounter().for_model(small)
    kept = [ChatMessage(m["role"], m["content"]) for m in sent]
    assert tokens.count_messages([MESSAGES[0], *kept]) <= 400 - 64
    assert records[-1].prompt_tokens == 11  # the vendor's count, of what it was sent


# -- a break after the first token ------------------------------------------------------


async def test_break_after_first_token_keeps_the_vendors_input_count(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    pauses = RecordedPauses()
    fake.enqueue(Script(chunks=["Partial ", "answer ", "never"], break_after=2, prompt_tokens=1234))
    router = make_router(pauses)

    text, [record] = await run(router, [HAIKU, GPT4O])

    # The drop can overtake the second chunk on a busy machine: the text is what came.
    assert text and "Partial answer ".startswith(text)
    assert (record.status, record.text) == ("failed", text)
    # message_start had counted the prompt: that count stays; the rest is ours.
    assert (record.prompt_tokens, record.estimated) == (1234, True)
    assert record.completion_tokens == router.counter.for_model(HAIKU).count(text)
    assert record.cost_usd == pytest.approx(router.cost_usd(HAIKU, 1234, record.completion_tokens))
    assert pauses.waits == [] and len(fake.requests) == 1  # never retried, never fell back


# -- a chain across named providers -----------------------------------------------------


async def test_chain_from_ollama_to_openai_to_anthropic(tmp_path: Path, fake: FakeLLM) -> None:
    (tmp_path / PROVIDERS_FILE).write_text(
        f"providers:\n  ollama:\n    kind: openai\n    base_url: {fake.base_url}\n"
    )
    settings = Settings(
        catalog=tmp_path,
        openai_api_key="sk-test-0123456789",
        openai_base_url=fake.base_url,
        anthropic_api_key="sk-ant-test-0123456789",
        anthropic_base_url=fake.anthropic_base_url,
        retry_attempts=2,
        retry_base_delay=0.0,
    )
    router = LLMRouter.from_settings(settings, environ={})
    fake.enqueue(
        *[Script(status=503, model_filter="llama3.2") for _ in range(2)],
        Script(status=400, model_filter="gpt-4o-mini", error_message="bad request"),
        Script(chunks=["Claude here."], model_filter="claude-haiku-4-5"),
    )
    chain = [ModelRef("ollama", "llama3.2"), MINI, HAIKU]
    try:
        text, records = await run(router, chain)
    finally:
        await router.aclose()

    assert text == "Claude here."
    assert [(str(r.model), r.status) for r in records] == [
        ("ollama:llama3.2", "failed"),
        ("ollama:llama3.2", "failed"),
        ("openai:gpt-4o-mini", "failed"),  # a 400 is not retried
        ("anthropic:claude-haiku-4-5", "complete"),
    ]
    assert [r.path for r in fake.requests] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/messages",
    ]
    # The local model is unknown: free, counted with OpenAI's stand-in tokenizer.
    assert records[0].cost_usd == 0.0


async def test_an_empty_usage_object_is_no_count(make_router: MakeRouter, fake: FakeLLM) -> None:
    chunk = '{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":{}}'
    end = '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{}}'
    fake.enqueue(Script(raw_sse=f"data: {chunk}\n\ndata: {end}\n\ndata: [DONE]\n\n".encode()))
    router = make_router(RecordedPauses())

    text, [record] = await run(router, [MINI])

    # "usage": {} is a server that counts nothing, not a count of zero: we count.
    assert (text, record.status, record.estimated) == ("Hi", "complete", True)
    tokens = router.counter.for_model(MINI)
    assert (record.prompt_tokens, record.completion_tokens) == (
        tokens.count_messages(MESSAGES),
        tokens.count("Hi"),
    )
