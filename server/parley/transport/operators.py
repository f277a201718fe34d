"""The operator console's REST under ``/v1/admin``: the queue, taking over, writing
to the user, handing back, live events, and the webhook's deliveries.

Every endpoint needs the admin role. Operators act on any user's
conversation through these endpoints only; the user-facing ones keep
answering ``not_found`` for conversations that are not the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from parley.auth.tokens import Principal
from parley.errors import Forbidden, TooLarge
from parley.operators.events import OperationsEvent
from parley.transport.bodies.admin import Deliveries, Posted, Queue
from parley.transport.bodies.base import respond
from parley.transport.bodies.conversations import HandoffState
from parley.transport.collect import sse_event
from parley.transport.fields import Identifier, UserText
from parley.transport.http import current_user
from parley.transport.params import query_int
from parley.transport.rest import parse_body, services_of

# The event stream ends after this long (EventSource reconnects at once,
# authenticating again), so it never outlives the token that opened it by much.
STREAM_SECONDS = 300.0
KEEPALIVE_SECONDS = 15.0
STREAM_BACKLOG = 1000


class OperatorMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: UserText
    client_id: Identifier | None = None


def require_admin(request: Request) -> Principal:
    user = current_user(request)
    if not user.admin:
        raise Forbidden("This needs the admin role.")
    return user


async def queue(request: Request) -> Response:
    require_admin(request)
    limit = query_int(request, "limit", default=100, low=1, high=500)
    review = services_of(request).operations.review
    return respond(Queue.model_validate({"queue": await review.queue(limit=limit)}))


async def take_over(request: Request) -> Response:
    operator = require_admin(request)
    desk = services_of(request).operations.desk
    conversation = await desk.take(operator, request.path_params["conversation_id"])
    return respond(
        HandoffState.model_validate(
            {"conversation_id": str(conversation.id), "handoff": conversation.handoff()}
        )
    )


async def release(request: Request) -> Response:
    operator = require_admin(request)
    desk = services_of(request).operations.desk
    conversation = await desk.release(operator, request.path_params["conversation_id"])
    return respond(
        HandoffState.model_validate(
            {"conversation_id": str(conversation.id), "handoff": conversation.handoff()}
        )
    )


async def post_message(request: Request) -> Response:
    operator = require_admin(request)
    services = services_of(request)
    body = await parse_body(request, OperatorMessage)
    if len(body.text) > services.settings.max_message_chars:
        raise TooLarge(f"Messages are limited to {services.settings.max_message_chars} characters.")
    posted = await services.operations.desk.post(
        operator,
        request.path_params["conversation_id"],
        text=body.text,
        client_id=body.client_id or str(uuid.uuid4()),
    )
    return respond(Posted.model_validate(posted))


async def events(request: Request) -> Response:
    """Server-Sent Events of every conversation's operations events (hints to re-read)."""
    require_admin(request)
    bus = services_of(request).operations.bus
    backlog: asyncio.Queue[OperationsEvent] = asyncio.Queue(STREAM_BACKLOG)

    def take(event: OperationsEvent) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a stuck reader misses hints only
            backlog.put_nowait(event)

    unwatch = bus.watch(None, take)

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            yield sse_event("ready", "{}")  # the console reads everything afresh now
            deadline = time.monotonic() + STREAM_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = await asyncio.wait_for(backlog.get(), min(KEEPALIVE_SECONDS, left))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield sse_event(str(event.get("kind", "event")), json.dumps(event))
        finally:
            unwatch()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def webhook_deliveries(request: Request) -> Response:
    require_admin(request)
    limit = query_int(request, "limit", default=50, low=1, high=500)
    deliveries = services_of(request).operations.deliveries
    return respond(Deliveries(deliveries=await deliveries.recent(limit=limit)))


def operator_routes() -> list[BaseRoute]:
    conversation = "/v1/admin/conversations/{conversation_id}"
    return [
        Route("/v1/admin/queue", queue, methods=["GET"]),
        Route("/v1/admin/events", events, methods=["GET"]),
        Route(f"{conversation}/takeover", take_over, methods=["POST"]),
        Route(f"{conversation}/release", release, methods=["POST"]),
        Route(f"{conversation}/messages", post_message, methods=["POST"]),
        Route("/v1/admin/webhooks/deliveries", webhook_deliveries, methods=["GET"]),
    ]
