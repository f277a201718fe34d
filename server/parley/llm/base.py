"""The one streaming interface every provider implements.

A provider turns a :class:`ChatRequest` into an async iterator of typed
events: :class:`TextDelta` while text arrives, one :class:`ToolCall` per
complete tool call the model asks for (its streamed argument pieces already
assembled), at most one :class:`Usage` when the vendor reports token counts,
and one :class:`Finish` at the end.
Failures are raised as :class:`ProviderError`; ``transient`` says whether a
retry could help (connection errors, timeouts, 429, 5xx).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model named as ``provider:model``, e.g. ``openai:gpt-4o-mini``."""

    provider: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        provider, sep, name = text.partition(":")
        if not sep or not provider or not name:
            raise ValueError(f"expected provider:model, got {text!r}")
        return cls(provider.strip(), name.strip())

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model is told about it: a name, what it does, its JSON Schema."""

    name: str  # ^[a-zA-Z0-9_-]{1,64}$, what both vendors accept
    description: str
    parameters: Mapping[str, Any]  # a JSON Schema of type "object"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model asked for. ``arguments`` is the model's raw JSON
    text: it is untrusted and may not even parse; the caller validates it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    # An assistant turn that asked for tools (its ``content`` is any text before them).
    tool_calls: tuple[ToolCall, ...] = ()
    # A ``tool`` turn: the result of the call with this id (``content`` is what
    # the model sees), and whether it is an error.
    tool_call_id: str | None = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float | None = None
    tools: tuple[ToolSpec, ...] = ()
    # False: the tools are described (a history holding tool turns needs them,
    # for Anthropic) but the model must answer in text this time.
    may_call_tools: bool = True


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


StreamEvent = TextDelta | ToolCall | Usage | Finish


class ProviderError(Exception):
    """An upstream call failed. ``transient`` errors are worth retrying.

    ``retry_after`` is how long the vendor asked us to wait (its
    ``Retry-After``), in seconds. ``usage`` is what the vendor had counted when
    a started stream broke (Anthropic reports the input tokens up front): its
    prompt count is the vendor's even though the call never finished.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.retry_after = retry_after
        self.usage: Usage | None = None


class Provider(Protocol):
    name: str  # what models name it by: the ``groq`` of ``groq:llama-3.3-70b``
    # Whose models it serves ("openai", "anthropic", ...): a model without a
    # price entry of its own is priced, windowed and tokenised as family:model.
    family: str

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


# "interrupted": its instance died mid-call (recorded by the sweeper, estimated).
CallStatus = Literal["complete", "failed", "cancelled", "interrupted"]
# What a call was for (``llm_usage.purpose``): the reply itself, a classifier
# rule judging the user's message, or the conversation's title.
CallPurpose = Literal["reply", "classifier", "title"]


@dataclass(slots=True)
class CallRecord:
    """One upstream call, as stored in ``llm_usage``."""

    model: ModelRef
    status: CallStatus
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    cost_usd: float = 0.0
    ttft_ms: int | None = None
    latency_ms: int = 0
    error: str | None = None
    finish_reason: str | None = None
    text: str = field(default="", repr=False)
    tool_calls: tuple[ToolCall, ...] = ()  # the calls the model asked for, in order
    # Parley stopped a model that streamed past max_tokens (finish_reason "length").
    cut_off: bool = False
    purpose: CallPurpose = "reply"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
