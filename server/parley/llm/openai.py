"""OpenAI Chat Completions, and every server that speaks it (Ollama, vLLM, LM Studio)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from parley.llm.base import ChatRequest, Finish, StreamEvent, TextDelta, Usage
from parley.llm.failures import vendor_message
from parley.llm.http import VendorHTTP
from parley.llm.sse import sse_json

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Local servers ignore the key, but some proxies in front of them insist on one.
PLACEHOLDER_API_KEY = "not-needed"

# Reasoning models reject ``max_tokens`` and any non-default temperature.
_REASONING_MODELS = re.compile(r"^(o\d|gpt-5)\b")


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, api_key: str | None, base_url: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        self._http = VendorHTTP(
            "OpenAI",
            f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/chat/completions",
            {"Authorization": f"Bearer {api_key or PLACEHOLDER_API_KEY}"},
            secret=api_key,
            connect_timeout=connect_timeout,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        usage: Usage | None = None
        finish = "unknown"
        async with self._http.lines(_body(request)) as lines:
            async for chunk in sse_json(lines):
                if "error" in chunk:  # an error event inside a healthy stream
                    text = f"stream error: {vendor_message(chunk, 'unknown')}"
                    raise self._http.error(text)
                usage = _usage(chunk) or usage
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield TextDelta(content)
                    finish = choice.get("finish_reason") or finish
        # Usage arrives after the finish chunk; report both once the stream is done.
        if usage is not None:
            yield usage
        yield Finish(finish)

    async def aclose(self) -> None:
        await self._http.aclose()


def _body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if _REASONING_MODELS.match(request.model):
        body["max_completion_tokens"] = request.max_tokens
    else:
        body["max_tokens"] = request.max_tokens  # older compatible servers know only this
        if request.temperature is not None:
            body["temperature"] = request.temperature
    return body


def _usage(chunk: dict[str, Any]) -> Usage | None:
    usage = chunk.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
