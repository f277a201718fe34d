"""Anthropic Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncStream
from anthropic._response import AsyncAPIResponse
from anthropic.types import (
    AssistantMessageParam,
    MessageParam,
    RawMessageStreamEvent,
    UserMessageParam,
)

from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderError,
    StreamEvent,
    TextDelta,
    Usage,
)
from parley.llm.failures import is_transient_status, redact, vendor_message
from parley.llm.sse import sse_json

READ_TIMEOUT = 600.0  # the router enforces first-token and idle timeouts

# Error types Anthropic sends inside a 200 stream that a retry can fix.
_TRANSIENT_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error"})

# The API insists the conversation starts with a user turn; when history was
# trimmed to start with a reply, this stands in for the turns we dropped.
TRIMMED_PLACEHOLDER = "(earlier conversation omitted)"


@dataclass(frozen=True, slots=True)
class AnthropicPrompt:
    system: str
    messages: tuple[tuple[str, str], ...]  # (role, text); roles alternate, user first


def to_anthropic(messages: Sequence[ChatMessage]) -> AnthropicPrompt:
    """System text goes apart; same-role turns merge; blank turns (rejected by the API) go."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content.strip())
    turns: list[tuple[str, str]] = []
    for message in messages:
        if message.role == "system" or not message.content.strip():
            continue
        if turns and turns[-1][0] == message.role:
            turns[-1] = (message.role, f"{turns[-1][1]}\n\n{message.content}")
        else:
            turns.append((message.role, message.content))
    if turns and turns[0][0] == "assistant":
        turns.insert(0, ("user", TRIMMED_PLACEHOLDER))
    return AnthropicPrompt(system, tuple(turns))


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self, api_key: str | None, base_url: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        self._api_key = api_key
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=anthropic.Timeout(READ_TIMEOUT, connect=connect_timeout),
            max_retries=0,  # the router retries, with its own policy and logging
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        state = _StreamState()
        try:
            async with self._create(request) as response:
                async for event in sse_json(response.iter_lines()):
                    text = state.read(event)
                    if text:
                        yield TextDelta(text)
        except (anthropic.APIError, httpx2.HTTPError, ValueError) as error:
            raise self._provider_error(error) from error
        if state.finish is None:
            raise ProviderError("the stream ended before message_stop", transient=True)
        if state.prompt_tokens is not None:
            yield Usage(state.prompt_tokens, state.completion_tokens)
        yield Finish(state.finish)

    async def aclose(self) -> None:
        await self._client.close()

    def _create(
        self, request: ChatRequest
    ) -> AsyncContextManager[AsyncAPIResponse[AsyncStream[RawMessageStreamEvent]]]:
        prompt = to_anthropic(request.messages)
        return self._client.messages.with_streaming_response.create(
            model=request.model,
            system=prompt.system or anthropic.omit,
            messages=[_message_param(role, text) for role, text in prompt.messages],
            max_tokens=request.max_tokens,
            # request.temperature is deliberately not sent: the Messages API of
            # the installed SDK (2.x) no longer has the parameter.
            stream=True,
        )

    def _provider_error(self, error: Exception) -> ProviderError:
        status: int | None = None
        if isinstance(error, anthropic.APIStatusError):
            status = error.status_code
            error_type = error.type if isinstance(error.type, str) else None
            text = f"HTTP {status}: {vendor_message(error.body, error.message)}"
            # Errors inside a 200 stream carry their kind in the body, not the status.
            transient = is_transient_status(status) or error_type in _TRANSIENT_TYPES
            if status < 400:
                status = None
                text = f"stream error: {error_type or 'unknown'}: {vendor_message(error.body, '')}"
        elif isinstance(error, anthropic.APITimeoutError):
            text, transient = "timed out talking to the Anthropic API", True
        elif isinstance(error, ValueError):
            text, transient = f"stream error: malformed event: {error}", True
        else:
            cause = error.__cause__ or error
            text, transient = (
                f"connection to the Anthropic API failed: {type(cause).__name__}: {cause}",
                True,
            )
        return ProviderError(redact(text, [self._api_key]), transient=transient, status=status)


@dataclass(slots=True)
class _StreamState:
    """What the Messages stream has said so far about usage and how it ended."""

    prompt_tokens: int | None = None
    completion_tokens: int = 0
    finish: str | None = None

    def read(self, event: dict[str, Any]) -> str:
        """Take in one event; return the text it adds, if any."""
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            return str(delta.get("text") or "") if delta.get("type") == "text_delta" else ""
        if kind == "message_start":
            self._usage((event.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self._usage(event.get("usage") or {})  # output_tokens is cumulative
            self.finish = (event.get("delta") or {}).get("stop_reason") or self.finish
        elif kind == "message_stop":
            self.finish = self.finish or "end_turn"
        elif kind == "error":
            error = event.get("error") or {}
            error_type = str(error.get("type") or "unknown")
            raise ProviderError(
                f"stream error: {error_type}: {error.get('message') or ''}",
                transient=error_type in _TRANSIENT_TYPES,
            )
        return ""

    def _usage(self, usage: dict[str, Any]) -> None:
        if usage.get("input_tokens") is not None:
            # Cached prompt tokens are still prompt tokens; the total is their sum.
            self.prompt_tokens = sum(
                int(usage.get(name) or 0)
                for name in (
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                )
            )
        if usage.get("output_tokens") is not None:
            self.completion_tokens = int(usage["output_tokens"])


def _message_param(role: str, text: str) -> MessageParam:
    if role == "assistant":
        return AssistantMessageParam(role="assistant", content=text)
    return UserMessageParam(role="user", content=text)
