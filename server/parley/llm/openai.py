"""OpenAI Chat Completions, and every server that speaks it (Ollama, vLLM, Groq,
OpenRouter, LM Studio, ...). Azure OpenAI speaks it too (:mod:`parley.llm.azure`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from yarl import URL

from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from parley.llm.failures import vendor_message
from parley.llm.http import VendorHTTP
from parley.llm.sse import sse_json
from parley.llm.toolwire import OpenAIToolCalls, spec_schema
from parley.llm.wire import VendorWire

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Local servers ignore the key, but some proxies in front of them insist on one.
PLACEHOLDER_API_KEY = "not-needed"

# The wire has no error flag for a tool result, so the text carries it.
TOOL_ERROR_PREFIX = "Error: "

# Reasoning models reject ``max_tokens`` and any non-default temperature.
_REASONING_MODELS = re.compile(r"^(o\d|gpt-5)\b")


class OpenAIWire(VendorWire):
    """Chat Completions over one endpoint: the body, the stream, the events.

    Subclasses say where each request goes (:meth:`url`).
    """

    family = "openai"

    def url(self, model: str) -> URL | None:
        """Where a request for ``model`` (the endpoint's id) goes; None: the endpoint's URL."""
        return None

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        usage: Usage | None = None
        finish = "unknown"
        calls = OpenAIToolCalls()
        model = self.model_id(request.model)
        try:
            async with self._http.lines(_body(request, model), url=self.url(model)) as lines:
                async for chunk in sse_json(lines):
                    if "error" in chunk:  # an error event inside a healthy stream
                        text = f"stream error: {vendor_message(chunk, 'unknown')}"
                        raise self._http.error(text)
                    # Most chunks say "usage": null; some servers send a running count in each.
                    reported = chunk.get("usage")
                    if reported:
                        usage = _usage(reported) or usage
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta")
                        if delta:
                            # A refusal is the model's answer to the user, streamed apart.
                            text = delta.get("content") or delta.get("refusal")
                            if text:
                                yield TextDelta(text)
                            if "tool_calls" in delta:
                                calls.add(delta["tool_calls"])
                        finish = choice.get("finish_reason") or finish
        except ProviderError as error:
            error.usage = error.usage or usage  # a running count's prompt tokens are the vendor's
            raise
        # Calls are whole only at the end; usage arrives after the finish chunk.
        for call in calls.calls():
            yield call
        if usage is not None:
            yield usage
        yield Finish(finish)


class OpenAIProvider(OpenAIWire):
    """OpenAI itself, or any server at ``base_url`` that speaks its API."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        connect_timeout: float = 10.0,
        *,
        name: str = "openai",
        models: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        http = VendorHTTP(
            "OpenAI" if name == "openai" else name,
            f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/chat/completions",
            # Extra headers first: they must not replace the key (OpenRouter's
            # HTTP-Referer and X-Title are what they are for).
            {**(headers or {}), "Authorization": f"Bearer {api_key or PLACEHOLDER_API_KEY}"},
            secret=api_key,
            secrets=secrets,
            connect_timeout=connect_timeout,
        )
        super().__init__(name, http, models or {})


def _body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The request body; ``model`` is the endpoint's id for ``request.model``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [_tool(spec) for spec in request.tools]
        if not request.may_call_tools:
            body["tool_choice"] = "none"
    # The Parley name, not a deployment's; a router's slug (openai/o3) by its last part.
    if _REASONING_MODELS.match(request.model.rsplit("/", 1)[-1]):
        body["max_completion_tokens"] = request.max_tokens
    else:
        body["max_tokens"] = request.max_tokens  # older compatible servers know only this
        if request.temperature is not None:
            body["temperature"] = request.temperature
    return body


def _message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        content = message.content
        if message.is_error:
            content = TOOL_ERROR_PREFIX + content
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content if message.content.strip() else None,
            "tool_calls": [_call(call) for call in message.tool_calls],
        }
    return {"role": message.role, "content": message.content}


def _call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec_schema(spec),  # cached per tool
        },
    }


def _usage(reported: object) -> Usage | None:
    """The vendor's counts, or None when it gave none (``{}`` is no count, not zero)."""
    if not isinstance(reported, dict):
        return None
    prompt = reported.get("prompt_tokens")
    completion = reported.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    total = reported.get("total_tokens")
    if isinstance(total, int) and total > prompt + completion:
        # xAI (and Gemini) leave reasoning tokens out of completion_tokens but
        # bill them as output; only the total has them.
        completion = total - prompt
    return Usage(prompt, completion)
