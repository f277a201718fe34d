"""Anthropic Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderError,
    StreamEvent,
    TextDelta,
    Usage,
)
from parley.llm.http import VendorHTTP
from parley.llm.sse import sse_json

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"

# Error types (in an error body or a stream's error event) that a retry can fix.
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
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._http = VendorHTTP(
            "Anthropic",
            f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/v1/messages",
            headers,
            secret=api_key,
            connect_timeout=connect_timeout,
            transient_types=_TRANSIENT_TYPES,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        state = _StreamState()
        async with self._http.lines(_body(request)) as lines:
            async for event in sse_json(lines):
                if event.get("type") == "error":
                    raise self._stream_error(event)
                text = state.read(event)
                if text:
                    yield TextDelta(text)
        if state.finish is None:
            raise self._http.error("the stream ended before message_stop")
        if state.prompt_tokens is not None:
            yield Usage(state.prompt_tokens, state.completion_tokens)
        yield Finish(state.finish)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _stream_error(self, event: dict[str, Any]) -> ProviderError:
        """An error event inside a 200 stream: its kind, not a status, says if a retry helps."""
        error = event.get("error") or {}
        kind = str(error.get("type") or "unknown")
        text = f"stream error: {kind}: {error.get('message') or ''}"
        return self._http.error(text, transient=kind in _TRANSIENT_TYPES)


def _body(request: ChatRequest) -> dict[str, Any]:
    prompt = to_anthropic(request.messages)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": role, "content": text} for role, text in prompt.messages],
        "max_tokens": request.max_tokens,
        "stream": True,
    }
    if prompt.system:
        body["system"] = prompt.system
    # request.temperature is deliberately not sent: the Messages API of the
    # SDK Parley used before (2.x) no longer had the parameter.
    return body


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
