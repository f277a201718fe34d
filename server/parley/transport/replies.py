"""REST for one reply: follow it (JSON or SSE) and answer its tool confirmations.

``GET /v1/replies/{reply_id}?after_seq=N`` reads the reply from after frame
``N``: collected into one JSON answer (until it ends or waits for approval),
or streamed as Server-Sent Events with ``stream=true``. It is how a REST
client continues after a confirmation, and how it resumes a stream that
dropped. ``POST /v1/replies/{reply_id}/confirm`` approves or declines a tool
call, on any instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from parley.errors import error_body
from parley.replies.events import Event
from parley.transport.bodies.base import respond
from parley.transport.bodies.replies import Confirmed, FollowedReply, FollowFailure
from parley.transport.collect import collect, sse_frames
from parley.transport.fields import Identifier
from parley.transport.http import current_user
from parley.transport.params import query_int
from parley.transport.rest import parse_body, services_of

MAX_SEQ = 10_000_000


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: Identifier
    approve: bool


async def follow_reply(request: Request) -> Response:
    user = current_user(request)
    replies = services_of(request).replies
    reply_id = request.path_params["reply_id"]
    after_seq = query_int(request, "after_seq", default=0, low=0, high=MAX_SEQ)
    events = replies.follow(reply_id, user.user_id, after_seq)
    if request.query_params.get("stream") in ("true", "1"):
        first = await anext(events)  # a foreign or unknown reply fails here, before the 200
        return StreamingResponse(
            sse_frames(_prepend(first, events)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    collected = await collect(events)
    body = {"reply_id": reply_id, "reply": collected.body(), "usage": collected.usage}
    failure = collected.failure()
    if failure is not None:
        return respond(
            FollowFailure.model_validate({"error": error_body(failure), **body}),
            status_code=failure.http_status,
        )
    return respond(FollowedReply.model_validate(body))


async def confirm_call(request: Request) -> Response:
    user = current_user(request)
    reply_id = request.path_params["reply_id"]
    body = await parse_body(request, ConfirmBody)
    await services_of(request).replies.confirm(
        reply_id, body.call_id, user.user_id, approve=body.approve
    )
    return respond(Confirmed(reply_id=reply_id, call_id=body.call_id, approve=body.approve))


async def _prepend(first: Event, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in events:
        yield event


def reply_routes() -> list[BaseRoute]:
    return [
        Route("/v1/replies/{reply_id}", follow_reply, methods=["GET"]),
        Route("/v1/replies/{reply_id}/confirm", confirm_call, methods=["POST"]),
    ]
