"""The OpenAI- and Anthropic-compatible APIs, described with their vendors' shapes."""

from __future__ import annotations

from functools import partial

from parley.transport.compat import anthropic_shapes, openai_shapes
from parley.transport.openapi.registry import Operation, Parameter, ok, streamed

# Each vendor's SDK reads errors in the vendor's own shape, not Parley's.
openai = partial(Operation, tag="openai", error_model=openai_shapes.ErrorBody)
anthropic = partial(Operation, tag="anthropic", error_model=anthropic_shapes.ErrorBody)

_TURN_HEADERS = {
    "Parley-Conversation-Id": "The conversation the turn is stored in.",
    "Parley-Reply-Id": "The reply's id (absent while a person holds the conversation).",
}
_CONVERSATION_HEADER = Parameter(
    "Parley-Conversation-Id",
    "Continue this conversation of yours (its agent must be `model`); a new one without it.",
)

COMPATIBLE = (
    openai(
        "GET",
        "/v1/models",
        "OpenAI: the agents, as models",
        ok(openai_shapes.ModelList, "One model per named agent."),
    ),
    openai(
        "POST",
        "/v1/chat/completions",
        "OpenAI: a chat completion by an agent",
        {
            200: streamed(
                openai_shapes.ChatCompletion,
                "The completion; with `stream: true`, chunks as Server-Sent Events "
                "ending with `[DONE]`.",
                json_data=False,  # the last event's data is `[DONE]`
                headers=_TURN_HEADERS,
            )
        },
        body=openai_shapes.ChatCompletionRequest,
        example={
            "model": "agent_gamma",
            "messages": [{"role": "user", "content": "My laptop will not boot"}],
        },
        headers=(_CONVERSATION_HEADER,),
        errors=(404, 409, 503),
    ),
    anthropic(
        "POST",
        "/v1/messages",
        "Anthropic: a message by an agent",
        {
            200: streamed(
                anthropic_shapes.MessageResponse,
                "The message; with `stream: true`, Anthropic's event stream.",
                headers=_TURN_HEADERS,
            )
        },
        body=anthropic_shapes.MessagesRequest,
        example={
            "model": "agent_gamma",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "My laptop will not boot"}],
        },
        headers=(_CONVERSATION_HEADER,),
        errors=(404, 409, 413, 503),
    ),
)
