"""OpenTelemetry traces, checked with the SDK's in-memory exporter.

From the environment (on only with an exporter), the upstream calls' GenAI
spans from the router, and one whole message inside a real app (in process,
on the real Postgres and Redis and the fake vendor): its spans form one
trace, and its log lines carry that trace's id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.testclient import TestClient

from conftest import TokenFactory
from parley.app import create_app
from parley.config import load_settings
from parley.llm.base import ChatMessage, ChatRequest, ModelRef
from parley.llm.models import PriceTable
from parley.llm.openai import OpenAIProvider
from parley.llm.router import LLMRouter, RetryPolicy, Timeouts
from parley.llm.tokens import TokenCounter
from parley.observability.logs import JsonFormatter
from parley.observability.tracing import NO_SPAN, NO_TRACING, Tracing
from support.fake_llm import FakeLLM, Script

MINI = ModelRef("openai", "gpt-4o-mini")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    tracing = Tracing.to_exporter(exporter)
    yield tracing
    tracing.shutdown()


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        {},  # no exporter, no endpoint: nowhere to send traces
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
    ],
)
def test_tracing_is_off_unless_an_exporter_is_configured(environ: dict[str, str]) -> None:
    tracing = Tracing.from_environment(environ)
    assert tracing is NO_TRACING and not tracing.enabled


def test_off_spans_cost_nothing() -> None:
    # One shared object for every span: no allocation, no context switch.
    assert NO_TRACING.span("parley.rules") is NO_SPAN
    assert NO_TRACING.message("agent", "conversation") is NO_SPAN
    request = ChatRequest(MINI.name, (ChatMessage("user", "hello"),), max_tokens=64)
    assert NO_TRACING.upstream_call(MINI, request) is NO_SPAN


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},  # otlp over HTTP
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
    ],
)
def test_configured_exporters_turn_tracing_on(environ: dict[str, str]) -> None:
    tracing = Tracing.from_environment(environ)
    try:
        assert tracing.enabled
    finally:
        tracing.shutdown()


def test_an_exporter_that_is_not_installed_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="parley.observability.tracing"):
        tracing = Tracing.from_environment({"OTEL_TRACES_EXPORTER": "zipkin_json"})
    assert not tracing.enabled
    assert "zipkin_json" in caplog.text and "parley[otel]" in caplog.text


def test_the_service_is_named_parley_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for service in (None, "parley-eu"):
        if service is not None:
            monkeypatch.setenv("OTEL_SERVICE_NAME", service)
        exporter = InMemorySpanExporter()
        tracing = Tracing.to_exporter(exporter)
        with tracing.span("probe"):
            pass
        tracing.shutdown()
        [probe] = exporter.get_finished_spans()
        assert probe.resource.attributes["service.name"] == (service or "parley")


# -- upstream calls -------------------------------------------------------------------


async def test_each_upstream_call_is_a_genai_span(
    fake: FakeLLM, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    fake.enqueue(Script(status=503), Script(chunks=["Hi", " there."], prompt_tokens=40))
    counter = TokenCounter()
    router = LLMRouter(
        {"openai": OpenAIProvider("sk-test", fake.base_url, connect_timeout=2)},
        PriceTable.defaults(),
        counter,
        RetryPolicy(attempts=2, base_delay=0.01),
        Timeouts(connect=2, first_token=5, idle=5),
        tracing=tracing,
    )
    try:
        with tracing.span("parent"):
            stream = router.stream(
                [MINI],
                [ChatMessage("user", "hello")],
                max_tokens=64,
                temperature=0.2,
                cancel=asyncio.Event(),
            )
            async for _ in stream:
                pass
    finally:
        await router.aclose()

    spans = {span.name: span for span in exporter.get_finished_spans()}
    parent = spans["parent"]
    failed, answered = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    for call in (failed, answered):
        assert call.kind is SpanKind.CLIENT
        assert call.parent is not None and call.parent.span_id == parent.context.span_id
        attributes = dict(call.attributes or {})
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.system"] == "openai"
        assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert attributes["gen_ai.request.max_tokens"] == 64
        assert attributes["gen_ai.request.temperature"] == 0.2
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "upstream_error"
    done = dict(answered.attributes or {})
    assert answered.status.status_code is StatusCode.UNSET
    assert (done["gen_ai.usage.input_tokens"], done["gen_ai.usage.output_tokens"]) == (40, 2)
    assert done["gen_ai.response.finish_reasons"] == ("stop",)
    assert done["parley.call.status"] == "complete"


# -- a whole message, in a real app ------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_a_message_is_one_trace_and_its_logs_carry_the_trace_id(
    server_env: dict[str, str],
    fake: FakeLLM,
    make_token: TokenFactory,
    exporter: InMemorySpanExporter,
    tracing: Tracing,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in server_env.items():
        monkeypatch.setenv(name, value)
    app = create_app(load_settings(), tracing=tracing)
    fake.enqueue(
        Script(status=503),  # retried: a log line inside the reply
        Script(tool_calls=[("lookup_order", '{"order_id": "1042"}')], prompt_tokens=50),
        Script(chunks=["Order 1042 has shipped."], prompt_tokens=80),
    )
    logs = _Lines()
    logging.getLogger("parley").addHandler(logs)
    try:
        # Leaving the client ends the app's lifespan, which waits for the reply task.
        with TestClient(app) as client:
            user, token = make_token()
            headers = {"Authorization": f"Bearer {token}"}
            with client.websocket_connect("/ws", headers=headers) as socket:
                socket.send_json({"type": "start", "agent": "agent_tools"})
                session = socket.receive_json()
                socket.send_json({"type": "message", "client_id": "c-1", "text": "Order 1042?"})
                frames = [socket.receive_json()]
                while frames[-1]["type"] != "done":
                    frames.append(socket.receive_json())
    finally:
        logging.getLogger("parley").removeHandler(logs)
    assert frames[-1]["status"] == "complete"
    reply_id = frames[0]["reply_id"]

    spans = exporter.get_finished_spans()
    [message] = [span for span in spans if span.name == "parley.message"]
    trace_id = message.context.trace_id
    assert all(span.context.trace_id == trace_id for span in spans)
    assert message.parent is None
    assert dict(message.attributes or {})["parley.reply.id"] == reply_id
    assert children(spans, message) == [
        "parley.budget",
        "parley.reply",
        "parley.rules",
        "parley.storage insert_turn",
    ]
    [reply] = [span for span in spans if span.name == "parley.reply"]
    assert children(spans, reply) == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "execute_tool lookup_order",
        "parley.budget",  # before the second round
        "parley.storage finish_reply",
    ]
    calls = [span for span in spans if span.name == "chat gpt-4o-mini"]
    reasons = [dict(span.attributes or {}).get("gen_ai.response.finish_reasons") for span in calls]
    assert reasons == [None, ("tool_calls",), ("stop",)]
    [tool] = [span for span in spans if span.name == "execute_tool lookup_order"]
    assert dict(tool.attributes or {})["parley.tool.status"] == "ok"

    [retry] = [line for line in logs.lines if "retrying" in line["message"]]
    assert retry["trace_id"] == format(trace_id, "032x")
    assert retry["reply_id"] == reply_id
    assert retry["conversation_id"] == session["conversation_id"]
    assert retry["user_id"] == user
    assert all("1042?" not in json.dumps(line) for line in logs.lines)


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    return sorted(
        span.name
        for span in spans
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    )
