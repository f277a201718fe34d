"""OpenAI Chat Completions, and every server that speaks it (Ollama, vLLM, LM Studio)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from typing import Any

import httpx2
import openai
from openai import AsyncStream
from openai._response import AsyncAPIResponse
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
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

# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"

# Reasoning models reject ``max_tokens`` and any non-default temperature.
_REASONING_MODELS = re.compile(r"^(o\d|gpt-5)\b")

# Our router enforces first-token and idle timeouts; this read timeout only
# backstops a provider used on its own.
READ_TIMEOUT = 600.0


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, api_key: str | None, base_url: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        self._api_key = api_key
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            timeout=openai.Timeout(READ_TIMEOUT, connect=connect_timeout),
            max_retries=0,  # the router retries, with its own policy and logging
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        usage: Usage | None = None
        finish = "unknown"
        try:
            async with self._create(request) as response:
                async for chunk in sse_json(response.iter_lines()):
                    if "error" in chunk:  # an error event inside a healthy stream
                        raise ProviderError(
                            f"stream error: {vendor_message(chunk, 'unknown')}", transient=True
                        )
                    usage = _usage(chunk) or usage
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield TextDelta(content)
                        finish = choice.get("finish_reason") or finish
        except (openai.APIError, httpx2.HTTPError, ValueError) as error:
            raise self._provider_error(error) from error
        # Usage arrives after the finish chunk; report both once the stream is done.
        if usage is not None:
            yield usage
        yield Finish(finish)

    async def aclose(self) -> None:
        await self._client.close()

    def _create(
        self, request: ChatRequest
    ) -> AsyncContextManager[AsyncAPIResponse[AsyncStream[ChatCompletionChunk]]]:
        reasoning = bool(_REASONING_MODELS.match(request.model))
        temperature = (
            request.temperature if request.temperature is not None and not reasoning else None
        )
        return self._client.chat.completions.with_streaming_response.create(
            model=request.model,
            messages=[_message_param(m) for m in request.messages],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=request.max_tokens if reasoning else openai.omit,
            # Older OpenAI-compatible servers only understand max_tokens.
            max_tokens=openai.omit if reasoning else request.max_tokens,
            temperature=openai.omit if temperature is None else temperature,
        )

    def _provider_error(self, error: Exception) -> ProviderError:
        status: int | None = None
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            text = f"HTTP {status}: {vendor_message(error.body, error.message)}"
            transient = is_transient_status(status)
        elif isinstance(error, openai.APITimeoutError):
            text, transient = "timed out talking to the OpenAI API", True
        elif isinstance(error, openai.APIConnectionError | httpx2.HTTPError):
            text, transient = f"connection to the OpenAI API failed: {_cause(error)}", True
        else:
            # A malformed event inside an otherwise healthy stream: a server-side hiccup.
            text, transient = f"stream error: {error}", True
        return ProviderError(redact(text, [self._api_key]), transient=transient, status=status)


def _usage(chunk: dict[str, Any]) -> Usage | None:
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _cause(error: Exception) -> str:
    cause = error.__cause__ or error
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return ChatCompletionSystemMessageParam(role="system", content=message.content)
    if message.role == "assistant":
        return ChatCompletionAssistantMessageParam(role="assistant", content=message.content)
    return ChatCompletionUserMessageParam(role="user", content=message.content)
