"""Anthropic Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import anthropic
import httpx2
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
        try:
            events = await self._create(request)
        except (anthropic.APIError, httpx2.HTTPError) as error:
            raise self._provider_error(error) from error
        prompt_tokens: int | None = None
        completion_tokens = 0
        finish: str | None = None
        try:
            async for event in events:
                if event.type == "message_start":
                    prompt_tokens = _input_tokens(event.message.usage)
                    completion_tokens = event.message.usage.output_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    if event.delta.text:
                        yield TextDelta(event.delta.text)
                elif event.type == "message_delta":
                    completion_tokens = event.usage.output_tokens  # cumulative
                    if event.usage.input_tokens is not None:
                        prompt_tokens = _input_tokens(event.usage)
                    finish = event.delta.stop_reason or finish
                elif event.type == "message_stop":
                    finish = finish or "end_turn"
        except (anthropic.APIError, httpx2.HTTPError) as error:
            raise self._provider_error(error) from error
        finally:
            await events.close()
        if finish is None:
            raise ProviderError("the stream ended before message_stop", transient=True)
        if prompt_tokens is not None:
            yield Usage(prompt_tokens, completion_tokens)
        yield Finish(finish)

    async def aclose(self) -> None:
        await self._client.close()

    async def _create(self, request: ChatRequest) -> anthropic.AsyncStream[RawMessageStreamEvent]:
        prompt = to_anthropic(request.messages)
        return await self._client.messages.create(
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
        else:
            cause = error.__cause__ or error
            text, transient = (
                f"connection to the Anthropic API failed: {type(cause).__name__}: {cause}",
                True,
            )
        return ProviderError(redact(text, [self._api_key]), transient=transient, status=status)


class _InputUsage(Protocol):
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def cache_creation_input_tokens(self) -> int | None: ...
    @property
    def cache_read_input_tokens(self) -> int | None: ...


def _input_tokens(usage: _InputUsage) -> int:
    # Cached prompt tokens are still prompt tokens; the total is their sum.
    return (
        (usage.input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )


def _message_param(role: str, text: str) -> MessageParam:
    if role == "assistant":
        return AssistantMessageParam(role="assistant", content=text)
    return UserMessageParam(role="user", content=text)
