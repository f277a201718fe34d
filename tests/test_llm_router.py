"""The router against a real HTTP fake of both vendors: retries, fallback, timeouts, cancel."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import pytest

from parley.config import Settings
from parley.errors import UpstreamUnavailable
from parley.llm.anthropic import AnthropicProvider
from parley.llm.base import (
    CallRecord,
    ChatMessage,
    ModelRef,
    Provider,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from parley.llm.demo import LABEL, DemoProvider
from parley.llm.models import PriceTable
from parley.llm.openai import OpenAIProvider
from parley.llm.router import CallFinished, LLMRouter, RetryPolicy, Timeouts
from parley.llm.tokens import TokenCounter
from support.fake_llm import FakeLLM, Script

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")

OPENAI_KEY = "sk-test-0123456789abcdef"
MINI = ModelRef("openai", "gpt-4o-mini")
GPT4O = ModelRef("openai", "gpt-4o")
HAIKU = ModelRef("anthropic", "claude-haiku-4-5")
DEMO = ModelRef("demo", "echo")
MESSAGES = (ChatMessage("system", "You are terse."), ChatMessage("user", "Say hello."))

MakeRouter = Callable[..., LLMRouter]


@pytest.fixture
async def make_router(fake: FakeLLM) -> AsyncIterator[MakeRouter]:
    routers: list[LLMRouter] = []

    def make(
        *,
        attempts: int = 3,
        base_delay: float = 0.01,
        first_token: float = 5.0,
        idle: float = 5.0,
        providers: dict[str, Provider] | None = None,
    ) -> LLMRouter:
        counter = TokenCounter()
        providers = providers or {
            "openai": OpenAIProvider(OPENAI_KEY, fake.base_url, connect_timeout=2),
            "anthropic": AnthropicProvider("sk-ant-test", fake.anthropic_base_url, 2),
            "demo": DemoProvider(0, counter=counter),
        }
        router = LLMRouter(
            providers,
            PriceTable.defaults(),
            counter,
            RetryPolicy(attempts=attempts, base_delay=base_delay, max_delay=base_delay * 4),
            Timeouts(connect=2, first_token=first_token, idle=idle),
        )
        routers.append(router)
        return router

    yield make
    for router in routers:
        await router.aclose()


async def run(
    router: LLMRouter,
    models: Sequence[ModelRef],
    cancel: asyncio.Event | None = None,
    messages: Sequence[ChatMessage] = MESSAGES,
) -> tuple[str, list[CallRecord]]:
    text: list[str] = []
    records: list[CallRecord] = []
    stream = router.stream(
        models, messages, max_tokens=64, temperature=None, cancel=cancel or asyncio.Event()
    )
    async for event in stream:
        if isinstance(event, TextDelta):
            text.append(event.text)
        else:
            assert isinstance(event, CallFinished)  # no tools offered, so no tool calls
            records.append(event.record)
    return "".join(text), records


def estimate(router: LLMRouter, model: ModelRef, text: str) -> tuple[int, int]:
    tokens = router.counter.for_model(model)
    return tokens.count_messages(MESSAGES), tokens.count(text)


async def test_streams_text_and_records_vendor_usage(make_router: MakeRouter) -> None:
    router = make_router()
    text, records = await run(router, [MINI])

    assert text == "Hello from the fake model."
    [record] = records
    assert (record.model, record.status, record.finish_reason) == (MINI, "complete", "stop")
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (11, 5, False)
    assert record.cost_usd == pytest.approx((11 * 0.15 + 5 * 0.60) / 1_000_000)
    assert record.ttft_ms is not None and record.ttft_ms <= record.latency_ms
    assert record.text == text and record.error is None


async def test_anthropic_through_the_router(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=["Bon", "jour"], prompt_tokens=20, completion_tokens=3))
    text, [record] = await run(make_router(), [HAIKU])

    assert text == "Bonjour"
    assert (record.status, record.finish_reason) == ("complete", "end_turn")
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (20, 3, False)
    assert record.cost_usd == pytest.approx((20 * 1.0 + 3 * 5.0) / 1_000_000)
    assert fake.requests[0].body["system"] == "You are terse."


async def test_server_without_usage_gets_estimated_counts(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["Hi", " there"], include_usage=False))
    router = make_router()
    text, [record] = await run(router, [MINI])

    assert text == "Hi there"
    assert record.status == "complete" and record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == estimate(router, MINI, text)
    assert record.prompt_tokens > 0 and record.completion_tokens == 2


@pytest.mark.parametrize("status", [503, 429, 500])
async def test_transient_failure_is_retried(
    make_router: MakeRouter, fake: FakeLLM, status: int
) -> None:
    fake.enqueue(Script(status=status))
    text, records = await run(make_router(), [MINI])

    assert text == "Hello from the fake model."
    assert [r.status for r in records] == ["failed", "complete"]
    failed = records[0]
    assert failed.error is not None and str(status) in failed.error
    assert (failed.prompt_tokens, failed.completion_tokens, failed.cost_usd) == (0, 0, 0.0)
    assert len(fake.requests) == 2


async def test_overloaded_anthropic_is_retried(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(status=529))
    _, records = await run(make_router(), [HAIKU])
    assert [r.status for r in records] == ["failed", "complete"]


async def test_permanent_failure_falls_back_without_retry(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(Script(status=400, model_filter="gpt-4o"))
    text, records = await run(make_router(), [GPT4O, HAIKU])

    assert text == "Hello from the fake model."
    assert [(r.model, r.status) for r in records] == [(GPT4O, "failed"), (HAIKU, "complete")]
    assert [r.model for r in fake.requests] == ["gpt-4o", "claude-haiku-4-5"]


async def test_exhausted_retries_fall_back_to_the_next_model(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(*[Script(status=503, model_filter="gpt-4o") for _ in range(2)])
    _, records = await run(make_router(attempts=2), [GPT4O, MINI])
    assert [(r.model, r.status) for r in records] == [
        (GPT4O, "failed"),
        (GPT4O, "failed"),
        (MINI, "complete"),
    ]


async def test_all_models_failing_raises_after_a_record_per_attempt(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(*[Script(status=503) for _ in range(4)])
    router = make_router(attempts=2)
    records: list[CallRecord] = []
    with pytest.raises(UpstreamUnavailable):
        stream = router.stream(
            [MINI, HAIKU], MESSAGES, max_tokens=64, temperature=None, cancel=asyncio.Event()
        )
        async for event in stream:
            assert isinstance(event, CallFinished)
            records.append(event.record)

    assert [(r.model, r.status) for r in records] == [
        (MINI, "failed"),
        (MINI, "failed"),
        (HAIKU, "failed"),
        (HAIKU, "failed"),
    ]
    assert all(r.error and "503" in r.error for r in records)
    assert len(fake.requests) == 4


async def test_failure_after_first_token_ends_without_retry_or_fallback(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["Par", "tial", " never"], break_after=2))
    router = make_router()
    text, [record] = await run(router, [MINI, HAIKU])

    assert text == "Partial"
    assert record.status == "failed" and record.text == "Partial"
    assert record.error is not None and "connection" in record.error
    assert record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == estimate(router, MINI, "Partial")
    assert len(fake.requests) == 1


async def test_cancel_mid_stream_closes_upstream_promptly(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["One", " two"], hold=True))
    router = make_router()
    cancel = asyncio.Event()
    stream = router.stream([MINI], MESSAGES, max_tokens=64, temperature=None, cancel=cancel)
    text = ""
    async for event in stream:
        assert isinstance(event, TextDelta)
        text += event.text
        if text == "One two":
            break
    cancel.set()
    started = time.monotonic()
    finished = await asyncio.wait_for(anext(stream), timeout=2)
    elapsed = time.monotonic() - started

    assert isinstance(finished, CallFinished)
    record = finished.record
    assert (record.status, record.text, record.estimated) == ("cancelled", "One two", True)
    assert (record.prompt_tokens, record.completion_tokens) == estimate(router, MINI, "One two")
    assert elapsed < 1.0
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await asyncio.to_thread(fake.wait_for_disconnects, 1)  # our side closes on the next loop turn


async def test_cancel_before_the_first_token(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(first_delay=30))
    router = make_router()
    cancel = asyncio.Event()
    stream = router.stream([MINI], MESSAGES, max_tokens=64, temperature=None, cancel=cancel)
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.to_thread(fake.wait_for_requests, 1)
    cancel.set()
    finished = await asyncio.wait_for(pending, timeout=2)

    assert isinstance(finished, CallFinished)
    assert (finished.record.status, finished.record.ttft_ms) == ("cancelled", None)
    assert finished.record.completion_tokens == 0 and finished.record.prompt_tokens > 0
    await stream.aclose()


async def test_cancel_during_backoff_stops_retrying(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(status=503))
    router = make_router(base_delay=30)
    cancel = asyncio.Event()
    stream = router.stream([MINI], MESSAGES, max_tokens=64, temperature=None, cancel=cancel)
    first = await anext(stream)
    assert isinstance(first, CallFinished) and first.record.status == "failed"
    # The router is now sleeping before the retry (at most 30 s); cancel must cut it short.
    rest = asyncio.ensure_future(anext(stream))
    cancel.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(rest, timeout=2)
    assert len(fake.requests) == 1


async def test_idle_timeout_after_first_token(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=["Early", " late"], delay=30))
    text, [record] = await run(make_router(idle=0.3), [MINI, HAIKU])

    assert text == "Early"
    assert record.status == "failed" and record.estimated
    assert record.error is not None and "timed out" in record.error
    assert len(fake.requests) == 1
    await asyncio.to_thread(fake.wait_for_disconnects, 1)  # our side closes on the next loop turn


async def test_idle_timeout_never_interrupts_the_callers_own_work(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["One", " two", " three"]))
    stream = make_router(idle=0.1).stream(
        [MINI], MESSAGES, max_tokens=64, temperature=None, cancel=asyncio.Event()
    )
    first = await anext(stream)
    assert first == TextDelta("One")
    # The caller is busy for longer than the idle timeout (in the same task, as
    # a reply writing to Redis is); only waits on the upstream may time out.
    await asyncio.sleep(0.3)
    rest = [event async for event in stream]
    texts = [e.text for e in rest if isinstance(e, TextDelta)]
    [finished] = [e for e in rest if isinstance(e, CallFinished)]
    assert "".join(texts) == " two three"
    assert finished.record.status == "complete"


async def test_cancelling_the_callers_task_is_not_mistaken_for_a_timeout(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(Script(chunks=["One"], hold=True))
    stream = make_router(idle=5).stream(
        [MINI], MESSAGES, max_tokens=64, temperature=None, cancel=asyncio.Event()
    )
    assert await anext(stream) == TextDelta("One")
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.to_thread(fake.wait_for_held, 1)
    waiting.cancel()  # e.g. the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await stream.aclose()
    await asyncio.to_thread(fake.wait_for_disconnects, 1)


async def test_first_token_timeout_is_retried(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(first_delay=30))
    text, records = await run(make_router(first_token=0.5), [MINI])

    assert text == "Hello from the fake model."
    assert [r.status for r in records] == ["failed", "complete"]
    assert records[0].error is not None and "first token" in records[0].error
    # The upstream had our prompt when we gave up, so its tokens are counted.
    assert records[0].prompt_tokens > 0 and records[0].estimated


async def test_unconfigured_provider_is_skipped(make_router: MakeRouter) -> None:
    text, records = await run(make_router(), [ModelRef("mistral", "large"), MINI])

    assert text == "Hello from the fake model."
    assert (records[0].status, records[0].error) == ("failed", "provider not configured")
    assert records[1].status == "complete"


async def test_recorded_error_is_redacted(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(status=401, error_message=f"Incorrect API key provided: {OPENAI_KEY}"))
    records: list[CallRecord] = []
    stream = make_router().stream(
        [MINI, DEMO],
        MESSAGES,
        max_tokens=64,
        temperature=None,
        cancel=asyncio.Event(),
    )
    async for event in stream:
        if isinstance(event, CallFinished):
            records.append(event.record)
    assert fake.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert records[0].error is not None and "401" in records[0].error
    assert OPENAI_KEY not in records[0].error and "0123456789" not in records[0].error


async def test_retries_and_fallbacks_are_logged(
    make_router: MakeRouter, fake: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake.enqueue(
        Script(status=503, model_filter="gpt-4o"), Script(status=400, model_filter="gpt-4o")
    )
    with caplog.at_level(logging.WARNING, logger="parley.llm.router"):
        await run(make_router(), [GPT4O, MINI])
    messages = [r.getMessage() for r in caplog.records if r.name == "parley.llm.router"]
    assert any("openai:gpt-4o attempt 1/3" in m and "retrying" in m for m in messages)
    assert any("falling back to openai:gpt-4o-mini" in m for m in messages)
    assert all(OPENAI_KEY not in m for m in messages)


async def test_demo_model_streams_offline(make_router: MakeRouter) -> None:
    router = make_router()
    text, [record] = await run(router, [DEMO])
    assert text.startswith(LABEL) and "Say hello." in text
    assert (record.status, record.estimated, record.cost_usd) == ("complete", False, 0.0)
    assert (record.prompt_tokens, record.completion_tokens) == estimate(router, DEMO, text)


async def test_from_settings_builds_configured_providers(fake: FakeLLM) -> None:
    settings = Settings(openai_base_url=fake.base_url, retry_attempts=2, first_token_timeout=3)
    router = LLMRouter.from_settings(settings)
    try:
        assert router.has_provider("openai") and router.has_provider("demo")
        assert not router.has_provider("anthropic")
        assert router.context_window(MINI) == 128_000
        text, [record] = await run(router, [MINI])
        assert text == "Hello from the fake model." and record.status == "complete"
        assert fake.requests[0].headers["authorization"] == "Bearer not-needed"
    finally:
        await router.aclose()


async def test_warm_up_loads_encodings_off_the_loop(make_router: MakeRouter) -> None:
    router = make_router()
    await router.warm_up()
    assert router.counter.for_model(MINI).count("hello world") == 2


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(attempts=5, base_delay=0.5, max_delay=3.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2


def test_retry_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)


# -- tool calls ------------------------------------------------------------------

LOOKUP = ToolSpec(
    "lookup_order",
    "Look an order up by its number.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}},
)


async def collect(
    router: LLMRouter,
    models: Sequence[ModelRef],
    *,
    tools: Sequence[ToolSpec] = (),
    max_tokens: int = 64,
) -> tuple[str, list[ToolCall], list[CallRecord]]:
    text: list[str] = []
    calls: list[ToolCall] = []
    records: list[CallRecord] = []
    stream = router.stream(
        models, MESSAGES, max_tokens=max_tokens, temperature=None,
        cancel=asyncio.Event(), tools=tools,
    )  # fmt: skip
    async for event in stream:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ToolCall):
            calls.append(event)
        else:
            records.append(event.record)
    return "".join(text), calls, records


@pytest.mark.parametrize(("model", "finish"), [(MINI, "tool_calls"), (HAIKU, "tool_use")])
async def test_tools_go_out_and_calls_come_back(
    make_router: MakeRouter, fake: FakeLLM, model: ModelRef, finish: str
) -> None:
    fake.enqueue(Script(tool_calls=[("lookup_order", '{"order_id": "1042"}', "call_1")]))
    text, calls, [record] = await collect(make_router(), [model], tools=[LOOKUP])

    assert text == ""
    assert calls == [ToolCall("call_1", "lookup_order", '{"order_id": "1042"}')]
    assert (record.status, record.finish_reason, record.tool_calls) == (
        "complete",
        finish,
        tuple(calls),
    )
    assert record.ttft_ms is not None  # a tool call is the first output
    [sent] = fake.requests
    assert [tool.get("name") or tool["function"]["name"] for tool in sent.body["tools"]] == [
        "lookup_order"
    ]


async def test_estimated_usage_counts_the_tools_and_the_calls(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    fake.enqueue(Script(tool_calls=[("lookup_order", '{"order_id": "7"}')], include_usage=False))
    router = make_router()
    _, [call], [record] = await collect(router, [MINI], tools=[LOOKUP])

    tokens = router.counter.for_model(MINI)
    assert record.estimated
    assert record.prompt_tokens == tokens.count_messages(MESSAGES) + tokens.count_tools([LOOKUP])
    assert record.completion_tokens == tokens.count("lookup_order") + tokens.count(call.arguments)


def anthropic_stream(*events: Mapping[str, object]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


START = {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}
USE = {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {}}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


async def test_a_tool_call_before_any_text_is_not_retried(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    # The call reaches the caller when its block closes; then the stream fails.
    fake.enqueue(
        Script(
            raw_sse=anthropic_stream(
                START,
                {"type": "content_block_start", "index": 0, "content_block": USE},
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": '{"order_id": "1"}'},
                },
                {"type": "content_block_stop", "index": 0},
                OVERLOADED,
            )
        )
    )
    text, calls, [record] = await collect(make_router(), [HAIKU, MINI], tools=[LOOKUP])

    assert (text, calls) == ("", [ToolCall("toolu_1", "lookup_order", '{"order_id": "1"}')])
    assert record.status == "failed" and record.tool_calls == tuple(calls)
    assert record.error is not None and "overloaded_error" in record.error
    assert len(fake.requests) == 1  # neither retried nor passed to the fallback


async def test_a_half_streamed_tool_call_is_retried(make_router: MakeRouter, fake: FakeLLM) -> None:
    # The stream fails inside the call's arguments: nothing reached the caller.
    fake.enqueue(
        Script(
            raw_sse=anthropic_stream(
                START,
                {"type": "content_block_start", "index": 0, "content_block": USE},
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": '{"order_'},
                },
                OVERLOADED,
            )
        ),
        Script(tool_calls=[("lookup_order", '{"order_id": "1"}', "toolu_2")]),
    )
    _, calls, records = await collect(make_router(), [HAIKU], tools=[LOOKUP])

    assert [r.status for r in records] == ["failed", "complete"]
    assert records[0].tool_calls == () and records[0].ttft_ms is None
    assert calls == [ToolCall("toolu_2", "lookup_order", '{"order_id": "1"}')]


# -- max_tokens, enforced ----------------------------------------------------------


@pytest.mark.parametrize("model", [MINI, HAIKU])
async def test_an_upstream_ignoring_max_tokens_is_cut_off(
    make_router: MakeRouter, fake: FakeLLM, model: ModelRef
) -> None:
    # hold: after its chunks the fake streams on until the client hangs up.
    fake.enqueue(Script(chunks=[" word"] * 400, hold=True, prompt_tokens=99, completion_tokens=400))
    router = make_router()
    text, _, [record] = await collect(router, [model], max_tokens=20)

    tokens = router.counter.for_model(model)
    assert text == " word" * 20 and tokens.count(text) == 20
    assert (record.status, record.finish_reason, record.cut_off) == ("complete", "length", True)
    # The vendor's count (99, 400) never came: only what was delivered is counted.
    assert (record.prompt_tokens, record.completion_tokens) == (tokens.count_messages(MESSAGES), 20)
    assert record.estimated and record.text == text
    await asyncio.to_thread(fake.wait_for_disconnects, 1)  # we hung up, not the fake
    assert len(fake.requests) == 1


async def test_a_single_oversized_chunk_is_trimmed_at_the_cap(
    make_router: MakeRouter, fake: FakeLLM
) -> None:
    long = " ".join(f"item{i}" for i in range(2000))
    fake.enqueue(Script(chunks=["Here:", long]))
    router = make_router()
    text, _, [record] = await collect(router, [MINI], max_tokens=50)

    assert record.cut_off and (record.finish_reason, record.completion_tokens) == ("length", 50)
    assert router.counter.for_model(MINI).count(text) == 50
    assert ("Here:" + long).startswith(text)


async def test_a_reply_within_max_tokens_is_not_cut(make_router: MakeRouter, fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=[" word"] * 20, completion_tokens=20))
    text, _, [record] = await collect(make_router(), [MINI], max_tokens=20)
    assert text == " word" * 20
    assert (record.finish_reason, record.cut_off, record.estimated) == ("stop", False, False)
