"""Anthropic's ``/v1/messages``, served by Parley's agents.

The same turn as OpenAI's chat completions (see ``turn``), in Anthropic's
shapes: a message with one text block, or its event stream
(``message_start``, ``content_block_start``, ``content_block_delta`` …,
``content_block_stop``, ``message_delta``, ``message_stop``). Usage is only
known once the reply is stored, so ``message_start`` reports zero tokens and
``message_delta`` the totals (which Anthropic's SDKs take over). Errors use
Anthropic's shape, with Parley's code in ``error.details.error_code``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parley.errors import ErrorCode, ParleyError
from parley.replies.events import Event
from parley.transport.collect import CollectedReply
from parley.transport.compat.anthropic_shapes import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ErrorBody,
    ErrorDetail,
    ErrorDetails,
    MessageDelta,
    MessageDeltaBody,
    MessageResponse,
    MessagesRequest,
    MessageStart,
    MessageStop,
    StopReason,
    TextBlock,
    TextDelta,
    Usage,
)
from parley.transport.compat.errors import parse, speaking
from parley.transport.compat.shapes import ParleyInfo, Shape
from parley.transport.compat.transcript import Transcript
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

# Anthropic's error types. Its API has no conflict type, and says "overloaded"
# for what Parley calls an unavailable upstream (both: try again shortly).
ERROR_TYPES: Mapping[ErrorCode, str] = {
    ErrorCode.BAD_REQUEST: "invalid_request_error",
    ErrorCode.CONFLICT: "invalid_request_error",
    ErrorCode.BUSY: "invalid_request_error",
    ErrorCode.TOO_LARGE: "request_too_large",
    ErrorCode.UNAUTHORIZED: "authentication_error",
    ErrorCode.FORBIDDEN: "permission_error",
    ErrorCode.NOT_FOUND: "not_found_error",
    ErrorCode.UNKNOWN_AGENT: "not_found_error",
    ErrorCode.RATE_LIMITED: "rate_limit_error",
    ErrorCode.BUDGET_EXCEEDED: "rate_limit_error",
    ErrorCode.UPSTREAM_UNAVAILABLE: "overloaded_error",
    ErrorCode.INTERNAL: "api_error",
}


def _error(error: ParleyError) -> ErrorBody:
    return ErrorBody(
        error=ErrorDetail(
            type=ERROR_TYPES[error.code],
            message=error.message,
            details=ErrorDetails(error_code=error.code.value),
        )
    )


def error_response(error: ParleyError, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        _error(error).model_dump_json(),
        status_code=error.http_status,
        headers=headers,
        media_type="application/json",
    )


def _event(shape: Shape) -> str:
    data = shape.model_dump(mode="json")
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@speaking(error_response)
async def messages(request: Request) -> Response:
    current_user(request)  # a caller without a valid token learns nothing about its body
    body = await parse(request, MessagesRequest)
    max_chars = services_of(request).settings.max_message_chars
    turns = [(message.role, message.content) for message in body.messages]
    turn = await start_turn(request, body.model, Transcript.of(turns, max_chars=max_chars))
    reply = _Reply(turn, body.model)
    return await (reply.streamed() if body.stream else reply.collected())


class _Reply:
    """One turn's reply as an Anthropic message, whole or as events."""

    def __init__(self, turn: StartedTurn, model: str) -> None:
        self.turn = turn
        self.model = model
        self.id = f"msg_{turn.id}"

    async def collected(self) -> Response:
        reply = await finished(self.turn)
        if isinstance(reply, ParleyError):
            return error_response(reply, self.turn.headers)
        message = self._message(
            [TextBlock(text=reply.text)] if reply.text else [],
            stop_reason="end_turn",
            usage=_usage(reply),
            parley=self.turn.info(reply),
        )
        return Response(
            message.model_dump_json(), headers=self.turn.headers, media_type="application/json"
        )

    async def streamed(self) -> Response:
        events = await under_way(self.turn)
        if isinstance(events, ParleyError):
            return error_response(events, self.turn.headers)
        return event_stream(self.turn, self._events(events))

    async def _events(self, events: AsyncIterator[Event]) -> AsyncIterator[str]:
        start = self._message([], stop_reason=None, usage=Usage(input_tokens=0, output_tokens=0))
        yield _event(MessageStart(message=start))
        reply = StreamedText(self.turn, events)
        async for text in reply.pieces():
            if not reply.sent:  # the text block opens with the first text
                yield _event(ContentBlockStart(index=0, content_block=TextBlock(text="")))
            yield _event(ContentBlockDelta(index=0, delta=TextDelta(text=text)))
        failure = reply.failure()
        if failure is not None:  # mid-stream: Anthropic's SDKs raise on an error event
            yield _event(_error(failure))
            return
        if reply.sent:
            yield _event(ContentBlockStop(index=0))
        yield _event(
            MessageDelta(
                delta=MessageDeltaBody(stop_reason="end_turn"),
                usage=_usage(reply.collected),
                parley=self.turn.info(reply.collected),
            )
        )
        yield _event(MessageStop())

    def _message(
        self,
        content: list[TextBlock],
        *,
        stop_reason: StopReason | None,
        usage: Usage,
        parley: ParleyInfo | None = None,
    ) -> MessageResponse:
        return MessageResponse(
            id=self.id,
            model=self.model,
            content=content,
            stop_reason=stop_reason,
            usage=usage,
            parley=parley,
        )


def _usage(collected: CollectedReply) -> Usage:
    tokens = Tokens.of(collected)
    return Usage(input_tokens=tokens.prompt, output_tokens=tokens.completion)


def anthropic_routes() -> list[BaseRoute]:
    return [Route("/v1/messages", messages, methods=["POST"])]
