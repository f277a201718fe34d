"""OpenTelemetry traces of Parley's work: optional, and free when switched off.

One trace per accepted message::

    parley.message                      ChatService.send, until the message is accepted
    ├── parley.rules                    the input rules
    ├── parley.budget                   the token budget's reservation
    ├── parley.storage insert_turn      the user message and the reply's row
    └── parley.reply                    the reply task, until the reply is stored
        ├── chat gpt-4o-mini            one per upstream call (GenAI conventions)
        ├── execute_tool lookup_order   one per tool call
        ├── parley.budget               before each further round
        └── parley.storage finish_reply

Configuration is OpenTelemetry's own: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``, ...), ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*`` and
``OTEL_SDK_DISABLED``. Unlike the SDK, Parley does not default to OTLP: with
no exporter and no OTLP endpoint configured there is nothing to send
traces to, and tracing is off.

Off (also without the ``otel`` extra installed), every span is the one shared
:data:`NO_SPAN`: no allocation, no context change, nothing to export. The
code that makes spans is therefore the same either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from parley import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import SpanKind, Tracer

    from parley.llm.base import CallRecord, ChatRequest, ModelRef

log = logging.getLogger(__name__)

AttributeValue = str | bool | int | float | Sequence[str]
Attributes = Mapping[str, AttributeValue]

EXPORTER_GROUP = "opentelemetry_traces_exporter"
INSTALL_HINT = "pip install 'parley[otel]'"


class Span(Protocol):
    """What Parley's code may do with a span, on or off."""

    def set(self, key: str, value: AttributeValue) -> None: ...

    def fail(self, error_type: str, description: str | None = None) -> None:
        """Mark the span failed: ``error_type`` is a short, fixed name (``error.type``)."""

    def finish_call(self, record: CallRecord) -> None:
        """An upstream call's span: what the call used and how it ended."""


class _NoSpan:
    """Every span when tracing is off; also its own context manager."""

    def set(self, key: str, value: AttributeValue) -> None:
        pass

    def fail(self, error_type: str, description: str | None = None) -> None:
        pass

    def finish_call(self, record: CallRecord) -> None:
        pass

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


NO_SPAN = _NoSpan()


class Tracing:
    """Makes Parley's spans with one OpenTelemetry tracer, or makes none.

    Built once per process (:meth:`from_environment`) and handed to the
    objects that make spans; :meth:`shutdown` sends what is still buffered.
    """

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer: Tracer | None = (
            provider.get_tracer("parley", __version__) if provider is not None else None
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Tracing:
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return NO_TRACING
        names = _exporter_names(environ)
        if not names:
            return NO_TRACING
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning(
                "traces are configured but OpenTelemetry is not installed: %s", INSTALL_HINT
            )
            return NO_TRACING
        exporters = [exporter for name in names if (exporter := _exporter(name, environ))]
        if not exporters:
            return NO_TRACING
        provider = TracerProvider(resource=_resource())  # the sampler comes from OTEL_*
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        log.info("tracing on: exporting to %s", ", ".join(names))
        return cls(provider)

    @classmethod
    def to_exporter(cls, exporter: SpanExporter) -> Tracing:
        """Every span to ``exporter`` as it ends (tests use the in-memory one)."""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=_resource())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()

    # -- the spans -------------------------------------------------------------------

    def span(self, name: str, attributes: Attributes | None = None) -> AbstractContextManager[Span]:
        """A span that is the current one for the block: spans made inside are its children.

        An exception leaving the block marks it failed. Not for a block that
        contains ``yield``: see :meth:`upstream_call`.
        """
        if self._tracer is None:
            return NO_SPAN
        return _current(self._tracer, name, attributes)

    def message(self, agent_id: str, conversation_id: str) -> AbstractContextManager[Span]:
        return self.span(
            "parley.message",
            {"parley.agent.id": agent_id, "parley.conversation.id": conversation_id},
        )

    def reply(self, reply_id: str, agent_id: str) -> AbstractContextManager[Span]:
        return self.span("parley.reply", {"parley.reply.id": reply_id, "parley.agent.id": agent_id})

    def storage(self, operation: str) -> AbstractContextManager[Span]:
        return self.span(
            f"parley.storage {operation}",
            {"db.system.name": "postgresql", "db.operation.name": operation},
        )

    def tool_call(self, tool: str, call_id: str) -> AbstractContextManager[Span]:
        return self.span(
            f"execute_tool {tool}",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.tool.call.id": call_id,
            },
        )

    def upstream_call(self, model: ModelRef, request: ChatRequest) -> AbstractContextManager[Span]:
        """One call to an LLM, described by OpenTelemetry's GenAI conventions; end it
        with :meth:`Span.finish_call`.

        The span never becomes the current one, because the router streams the
        call from inside an async generator, and a generator must not switch
        the caller's context between its yields.
        """
        if self._tracer is None:
            return NO_SPAN
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": model.provider,
            "gen_ai.provider.name": model.provider,
            "gen_ai.request.model": model.name,
            "gen_ai.request.max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        from opentelemetry.trace import SpanKind

        return _detached(self._tracer, f"chat {model.name}", attributes, SpanKind.CLIENT)


NO_TRACING = Tracing()


class _Recording:
    """A live OpenTelemetry span behind the :class:`Span` interface."""

    __slots__ = ("_span",)

    def __init__(self, span: OtelSpan) -> None:
        self._span = span

    def set(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def fail(self, error_type: str, description: str | None = None) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, description))

    def finish_call(self, record: CallRecord) -> None:
        span = self._span
        span.set_attribute("gen_ai.usage.input_tokens", record.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", record.completion_tokens)
        if record.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [record.finish_reason])
        span.set_attribute("parley.call.status", record.status)
        span.set_attribute("parley.usage.estimated", record.estimated)
        span.set_attribute("parley.cost_usd", record.cost_usd)
        if record.ttft_ms is not None:
            span.set_attribute("parley.ttft_ms", record.ttft_ms)
        if record.status == "failed":
            self.fail("upstream_error", record.error)


@contextlib.contextmanager
def _current(tracer: Tracer, name: str, attributes: Attributes | None) -> Iterator[Span]:
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        yield _Recording(span)


@contextlib.contextmanager
def _detached(tracer: Tracer, name: str, attributes: Attributes, kind: SpanKind) -> Iterator[Span]:
    span = tracer.start_span(name, kind=kind, attributes=attributes)
    try:
        yield _Recording(span)
    except GeneratorExit:  # the caller stopped reading; the call's own record says how it ended
        raise
    except BaseException as error:
        span.record_exception(error)
        _Recording(span).fail(type(error).__name__, str(error) or None)
        raise
    finally:
        span.end()


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    configured = environ.get("OTEL_TRACES_EXPORTER")
    if configured is None:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [name.strip().lower() for name in configured.split(",")]
    return [name for name in names if name and name != "none"]


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    """An exporter by its ``OTEL_TRACES_EXPORTER`` name, from installed entry points."""
    if name == "otlp":
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        name = "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"
    found = entry_points(group=EXPORTER_GROUP, name=name)
    if not found:
        log.warning(
            "trace exporter %r is not installed (%s); not exporting there", name, INSTALL_HINT
        )
        return None
    # Exporters read their own OTEL_EXPORTER_* settings.
    return next(iter(found)).load()()


def _resource() -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({"service.version": __version__})  # + OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "parley"}))
    return resource
