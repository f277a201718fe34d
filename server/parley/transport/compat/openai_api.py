"""OpenAI's ``/v1/models`` and ``/v1/chat/completions``, served by Parley's agents.

A model is an agent: ``model`` names it, and the reply is the agent's, with
its rules, budget, tools and storage, exactly as over ``/v1/chat``. What
Parley did beyond OpenAI's fields (rule notices, tool steps, the
conversation it stored the turn in) travels in a ``parley`` extension
object; errors use OpenAI's shape and statuses, so OpenAI's SDKs raise
their own typed exceptions. See docs/clients.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parley.errors import ErrorCode, ParleyError
from parley.replies.events import Event
from parley.transport.collect import CollectedReply
from parley.transport.compat.errors import InvalidParam, param_of, parse, speaking
from parley.transport.compat.openai_shapes import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ErrorBody,
    ErrorDetail,
    Model,
    ModelList,
    Usage,
)
from parley.transport.compat.shapes import ParleyInfo, Shape
from parley.transport.compat.transcript import Role, Transcript
from parley.transport.compat.turn import (
    StartedTurn,
    StreamedText,
    Tokens,
    event_stream,
    finished,
    start_turn,
    under_way,
)
from parley.transport.http import current_user
from parley.transport.rest import services_of

# OpenAI's model objects have a creation time; an agent's is when this server started.
STARTED = int(time.time())
DONE = "data: [DONE]\n\n"

# OpenAI's error types; the code is Parley's own (docs/protocol.md).
ERROR_TYPES: Mapping[ErrorCode, str] = {
    ErrorCode.BAD_REQUEST: "invalid_request_error",
    ErrorCode.TOO_LARGE: "invalid_request_error",
    ErrorCode.UNKNOWN_AGENT: "invalid_request_error",
    ErrorCode.CONFLICT: "invalid_request_error",
    ErrorCode.UNAUTHORIZED: "authentication_error",
    ErrorCode.FORBIDDEN: "permission_error",
    ErrorCode.NOT_FOUND: "not_found_error",
    ErrorCode.BUSY: "conflict_error",
    ErrorCode.RATE_LIMITED: "rate_limit_error",
    ErrorCode.BUDGET_EXCEEDED: "insufficient_quota",
    ErrorCode.UPSTREAM_UNAVAILABLE: "server_error",
    ErrorCode.INTERNAL: "server_error",
}


def _error(error: ParleyError) -> ErrorBody:
    return ErrorBody(
        error=ErrorDetail(
            message=error.message,
            type=ERROR_TYPES[error.code],
            param=param_of(error),
            code=error.code.value,
        )
    )


def error_response(error: ParleyError, headers: Mapping[str, str] | None = None) -> Response:
    # OpenAI answers an over-long input with 400, and its SDKs have no type for 413.
    status = 400 if error.code is ErrorCode.TOO_LARGE else error.http_status
    return _json(_error(error), status=status, headers=headers)


def _json(shape: Shape, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        shape.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )


def _sse(shape: Shape) -> str:
    return f"data: {shape.model_dump_json()}\n\n"


# -- models --------------------------------------------------------------------------


@speaking(error_response)
async def list_models(request: Request) -> Response:
    current_user(request)
    agents = services_of(request).catalog.current.agents.values()
    models = [
        Model(id=agent.id, created=STARTED, name=agent.name, description=agent.description)
        for agent in agents
    ]
    return _json(ModelList(data=models))


# -- chat completions ------------------------------------------------------------------


@speaking(error_response)
async def chat_completions(request: Request) -> Response:
    current_user(request)  # a caller without a valid token learns nothing about its body
    body = await parse(request, ChatCompletionRequest)
    transcript = _transcript(body, services_of(request).settings.max_message_chars)
    turn = await start_turn(request, body.model, transcript)
    reply = _Reply(turn, body.model, created=int(time.time()))
    if body.stream:
        return await reply.streamed(include_usage=body.include_usage)
    return await reply.collected()


def _transcript(body: ChatCompletionRequest, max_chars: int) -> Transcript:
    """The caller's messages as a Parley transcript.

    System and developer messages are left out: the agent's own system prompt
    (its personality and rules) is the only one, or a caller could rewrite
    the rules it is held to. Tool turns cannot come from a Parley agent,
    which never hands tool calls to its caller.
    """
    turns: list[tuple[Role, str]] = []
    for index, message in enumerate(body.messages):
        if message.role in ("tool", "function") or message.tool_calls:
            raise InvalidParam(
                "Parley agents run their tools themselves; a conversation with tool calls "
                "or tool results is not one of theirs.",
                param=f"messages.{index}",
            )
        if message.role in ("user", "assistant"):
            role: Role = "user" if message.role == "user" else "assistant"
            turns.append((role, message.content or ""))
    return Transcript.of(turns, max_chars=max_chars)


class _Reply:
    """One turn's reply as a chat completion, whole or as chunks."""

    def __init__(self, turn: StartedTurn, model: str, *, created: int) -> None:
        self.turn = turn
        self.model = model
        self.created = created
        self.id = f"chatcmpl-{turn.id}"

    async def collected(self) -> Response:
        reply = await finished(self.turn)
        if isinstance(reply, ParleyError):
            return error_response(reply, self.turn.headers)
        completion = ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[Choice(message=AssistantMessage(content=reply.text))],
            usage=_usage(reply),
            parley=self.turn.info(reply),
        )
        return _json(completion, headers=self.turn.headers)

    async def streamed(self, *, include_usage: bool) -> Response:
        """Chunks, once the reply is under way; a reply that fails before any text
        or tool step is an error response instead, with its HTTP status."""
        events = await under_way(self.turn)
        if isinstance(events, ParleyError):
            return error_response(events, self.turn.headers)
        return event_stream(self.turn, self._chunks(events, include_usage=include_usage))

    async def _chunks(
        self, events: AsyncIterator[Event], *, include_usage: bool
    ) -> AsyncIterator[str]:
        yield self._chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])
        reply = StreamedText(self.turn, events)
        async for text in reply.pieces():
            yield self._chunk([ChunkChoice(delta=Delta(content=text))])
        failure = reply.failure()
        if failure is not None:  # mid-stream: OpenAI's SDKs raise on an error event
            yield _sse(_error(failure))
            return
        finish = ChunkChoice(delta=Delta(), finish_reason="stop")
        yield self._chunk([finish], parley=self.turn.info(reply.collected))
        if include_usage:
            yield self._chunk([], usage=_usage(reply.collected))
        yield DONE

    def _chunk(
        self,
        choices: list[ChunkChoice],
        *,
        usage: Usage | None = None,
        parley: ParleyInfo | None = None,
    ) -> str:
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage,
            parley=parley,
        )
        return _sse(chunk)


def _usage(collected: CollectedReply) -> Usage:
    tokens = Tokens.of(collected)
    return Usage(
        prompt_tokens=tokens.prompt,
        completion_tokens=tokens.completion,
        total_tokens=tokens.prompt + tokens.completion,
    )


def openai_routes() -> list[BaseRoute]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
