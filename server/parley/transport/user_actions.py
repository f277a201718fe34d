"""What users do to their own conversations besides talking: rename one, ask for a
person, rate a reply. Another user's conversation or message is ``not_found``.

- ``PATCH /v1/conversations/{id}`` ``{"title"}``
- ``POST /v1/conversations/{id}/handoff`` ``{"reason"?}``
- ``POST /v1/messages/{message_id}/feedback`` ``{"rating": "up" | "down", "comment"?}``
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parley.errors import BadRequest
from parley.transport.bodies.base import respond
from parley.transport.bodies.conversations import FeedbackGiven, HandoffState, Renamed
from parley.transport.fields import Comment, Title
from parley.transport.http import current_user
from parley.transport.rest import parse_body, services_of


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title


class HandoffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Comment | None = None


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    comment: Comment | None = None


async def rename(request: Request) -> Response:
    user = current_user(request)
    body = await parse_body(request, RenameBody)
    title = " ".join(body.title.split())  # one line, as every title is shown
    if not title:
        raise BadRequest("title: must not be blank")
    conversations = services_of(request).conversations
    conversation = await conversations.rename(
        user.user_id, request.path_params["conversation_id"], title
    )
    return respond(Renamed.model_validate({"conversation": conversation.public()}))


async def ask_for_person(request: Request) -> Response:
    user = current_user(request)
    raw = await request.body()
    body = HandoffBody() if not raw.strip() else await parse_body(request, HandoffBody)
    desk = services_of(request).operations.desk
    state = await desk.ask_for_person(user, request.path_params["conversation_id"], body.reason)
    return respond(
        HandoffState.model_validate(
            {"conversation_id": request.path_params["conversation_id"], "handoff": state}
        )
    )


async def give_feedback(request: Request) -> Response:
    user = current_user(request)
    body = await parse_body(request, FeedbackBody)
    feedback = await services_of(request).operations.feedback.give(
        user.user_id, request.path_params["message_id"], body.rating, body.comment
    )
    return respond(FeedbackGiven.model_validate({"feedback": feedback.public()}))


def user_action_routes() -> list[BaseRoute]:
    return [
        Route("/v1/conversations/{conversation_id}", rename, methods=["PATCH"]),
        Route("/v1/conversations/{conversation_id}/handoff", ask_for_person, methods=["POST"]),
        Route("/v1/messages/{message_id}/feedback", give_feedback, methods=["POST"]),
    ]
