"""Anthropic Messages API: direct, and the wire Bedrock and Vertex AI reuse."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
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
from parley.llm.http import VendorHTTP
from parley.llm.sse import sse_json
from parley.llm.toolwire import AnthropicToolUse, arguments_object, spec_schema
from parley.llm.wire import VendorWire

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"

# Error types (in an error body or a stream's error event) that a retry can fix.
TRANSIENT_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error"})

# The API insists the conversation starts with a user turn; when history was
# trimmed to start with a reply, this stands in for the turns we dropped.
TRIMMED_PLACEHOLDER = "(earlier conversation omitted)"

# What the user reads when the model refused without a word (stop_reason
# "refusal" with no text), instead of an empty reply.
REFUSAL_TEXT = "The model declined to answer this request."

Block = dict[str, Any]
# A turn's content: plain text as a string (the simplest form the API takes),
# content blocks once tool calls or results are involved.
Content = str | tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class AnthropicPrompt:
    system: str
    messages: tuple[tuple[str, Content], ...]  # (role, content); roles alternate, user first


def to_anthropic(messages: Sequence[ChatMessage]) -> AnthropicPrompt:
    """System text goes apart; same-role turns merge; blank turns (rejected by the API) go.

    Tool results are user turns of ``tool_result`` blocks, so consecutive
    results merge into the one user turn the API wants after the assistant
    turn that asked for them.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content.strip())
    turns: list[tuple[str, list[Block]]] = []
    for message in messages:
        if message.role == "system":
            continue
        role, blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    if turns and turns[0][0] == "assistant":
        turns.insert(0, ("user", [_text(TRIMMED_PLACEHOLDER)]))
    return AnthropicPrompt(system, tuple((role, _content(blocks)) for role, blocks in turns))


def _blocks(message: ChatMessage) -> tuple[str, list[Block]]:
    if message.role == "tool":
        result = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.content,
            "is_error": message.is_error,
        }
        return "user", [result]
    blocks = [_text(message.content)] if message.content.strip() else []
    for call in message.tool_calls:
        use = {"type": "tool_use", "id": call.id, "name": call.name}
        blocks.append({**use, "input": arguments_object(call.arguments)})
    return message.role, blocks


def _text(text: str) -> Block:
    return {"type": "text", "text": text}


def _content(blocks: list[Block]) -> Content:
    if all(block["type"] == "text" for block in blocks):
        return "\n\n".join(block["text"] for block in blocks)
    # In a user turn the tool results must come before any text.
    return tuple(sorted(blocks, key=lambda block: block["type"] != "tool_result"))


class MessagesWire(VendorWire):
    """The Messages API over one endpoint: the body, the events, the outcome.

    Subclasses say how a request is sent and its events read (:meth:`events`).
    """

    family = "anthropic"

    def events(
        self, model: str, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """The stream's events for ``body`` (``model`` is the endpoint's id, also in it)."""
        return sse_events(self._http, body)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        state = _StreamState()
        model = self.model_id(request.model)
        try:
            async with self.events(model, messages_body(request, model)) as events:
                async for event in events:
                    if event.get("type") == "error":
                        raise self._stream_error(event)
                    output = state.read(event)
                    if output is not None:
                        yield output
        except ProviderError as error:
            # message_start counted the input: a stream broken after it keeps that count.
            if error.usage is None and state.prompt_tokens is not None:
                error.usage = Usage(state.prompt_tokens, state.completion_tokens)
            raise
        if state.finish is None:
            raise self._http.error("the stream ended before message_stop")
        if state.finish == "refusal" and not state.spoke:
            yield TextDelta(REFUSAL_TEXT)
        if state.prompt_tokens is not None:
            yield Usage(state.prompt_tokens, state.completion_tokens)
        yield Finish(state.finish)

    def _stream_error(self, event: dict[str, Any]) -> ProviderError:
        """An error event inside a 200 stream: its kind, not a status, says if a retry helps."""
        error = event.get("error") or {}
        kind = str(error.get("type") or "unknown")
        text = f"stream error: {kind}: {error.get('message') or ''}"
        return self._http.error(text, transient=kind in TRANSIENT_TYPES)


class AnthropicProvider(MessagesWire):
    """Anthropic's own API, with an ``x-api-key``."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        connect_timeout: float = 10.0,
        *,
        name: str = "anthropic",
        models: Mapping[str, str] | None = None,
    ) -> None:
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        http = VendorHTTP(
            "Anthropic" if name == "anthropic" else name,
            f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/v1/messages",
            headers,
            secret=api_key,
            connect_timeout=connect_timeout,
            transient_types=TRANSIENT_TYPES,
        )
        super().__init__(name, http, models or {})


@asynccontextmanager
async def sse_events(
    http: VendorHTTP, body: dict[str, Any], url: URL | None = None
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    async with http.lines(body, url=url) as lines:
        yield sse_json(lines)


def messages_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The request body; ``model`` is the endpoint's id for ``request.model``."""
    prompt = to_anthropic(request.messages)
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": role, "content": content if isinstance(content, str) else list(content)}
            for role, content in prompt.messages
        ],
        "max_tokens": request.max_tokens,
        "stream": True,
    }
    if prompt.system:
        body["system"] = prompt.system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.tools:
        body["tools"] = [_tool(spec) for spec in request.tools]
        if not request.may_call_tools:
            body["tool_choice"] = {"type": "none"}
    return body


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "input_schema": spec_schema(spec),  # cached per tool
    }


@dataclass(slots=True)
class _StreamState:
    """What the Messages stream has said so far: usage, tool calls, how it ended."""

    prompt_tokens: int | None = None
    completion_tokens: int = 0
    finish: str | None = None
    spoke: bool = False  # some text came
    tools: AnthropicToolUse = field(default_factory=AnthropicToolUse)

    def read(self, event: dict[str, Any]) -> TextDelta | ToolCall | None:
        """Take in one event; return the text or the whole tool call it adds, if any."""
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            delta_kind = delta.get("type")
            if delta_kind == "text_delta":
                text = delta.get("text")
                if text:
                    self.spoke = True
                    return TextDelta(str(text))
            elif delta_kind == "input_json_delta":
                self.tools.extend(event.get("index"), delta.get("partial_json"))
            return None  # thinking and signature deltas are not for the user
        if kind == "content_block_start":
            self.tools.start(event.get("index"), event.get("content_block"))
        elif kind == "content_block_stop":
            return self.tools.stop(event.get("index"))
        elif kind == "message_start":
            self._usage((event.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self._usage(event.get("usage") or {})  # output_tokens is cumulative
            self.finish = (event.get("delta") or {}).get("stop_reason") or self.finish
        elif kind == "message_stop":
            self.finish = self.finish or "end_turn"
        return None

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
