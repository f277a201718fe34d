"""REST endpoints under ``/v1``: chat, agents, conversations, usage, admin."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from parley.auth.tokens import Principal
from parley.catalog import CatalogError
from parley.errors import (
    BadRequest,
    Busy,
    Conflict,
    Forbidden,
    error_body,
)
from parley.replies.events import Event
from parley.services import Services
from parley.storage.records import Conversation
from parley.transport.bodies.admin import HandoffList, Reloaded
from parley.transport.bodies.agents import AgentList
from parley.transport.bodies.base import respond
from parley.transport.bodies.conversations import ConversationDetail, ConversationList, UsageReport
from parley.transport.bodies.replies import ChatAnswer, ChatFailure
from parley.transport.collect import collect, sse_frames
from parley.transport.fields import Identifier, UserText
from parley.transport.http import current_user, error_response
from parley.transport.params import query_int
from parley.views import Accepted

_identifier: TypeAdapter[str] = TypeAdapter(Identifier)
Body = TypeVar("Body", bound=BaseModel)


class ChatBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # What ``_one_target`` checks, for the API's description.
        json_schema_extra={"oneOf": [{"required": ["agent"]}, {"required": ["conversation_id"]}]},
    )

    agent: Identifier | None = None
    conversation_id: Identifier | None = None
    message: UserText
    client_id: Identifier | None = None
    stream: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> ChatBody:
        if (self.agent is None) == (self.conversation_id is None):
            raise ValueError("give exactly one of agent or conversation_id")
        return self

    def fingerprint(self) -> str:
        """What makes two requests "the same" for an idempotency key."""
        same = {
            "agent": self.agent,
            "conversation_id": self.conversation_id,
            "message": self.message,
        }
        return hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def parse_body(request: Request, model: type[Body]) -> Body:
    """The request's JSON body as ``model``, or ``bad_request`` naming the first problem."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None


# -- chat ------------------------------------------------------------------------


async def chat(request: Request) -> Response:
    user = current_user(request)
    services = services_of(request)
    body = await parse_body(request, ChatBody)
    if body.agent is not None:  # refused before its new conversation is stored
        services.chat.limits.check(body.message, services.chat.resolve_agent(body.agent))
    key = _idempotency_key(request) or body.client_id
    if body.agent is not None and key is None:
        # A new conversation no key could have bound before: stored with its first
        # turn, in one statement, on the way to the first token.
        conversation, accepted = await services.chat.send_first(
            user, body.agent, client_id=str(uuid.uuid4()), text=body.message
        )
    else:
        conversation = await _conversation_for(services, user, body, key)
        accepted = await services.chat.send(
            user, conversation, client_id=key or str(uuid.uuid4()), text=body.message
        )
    if accepted.reply_id is None:
        return await _held(services, user, conversation, accepted, stream=body.stream)
    frames = services.replies.follow(accepted.reply_id, user.user_id)
    if body.stream:
        return StreamingResponse(
            sse_frames(frames, accepted.frame()),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await _collect(conversation, accepted, frames)


def _idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header: it becomes the message's ``client_id``, so same rules."""
    raw = request.headers.get("idempotency-key")
    if not raw:
        return None
    try:
        return _identifier.validate_python(raw)
    except ValidationError as error:
        raise BadRequest(f"Idempotency-Key: {error.errors()[0]['msg']}") from None


async def _conversation_for(
    services: Services, user: Principal, body: ChatBody, key: str | None
) -> Conversation:
    store = services.conversations
    fingerprint = body.fingerprint()
    if key is not None:
        bound = await store.idempotent_conversation(user.user_id, key)
        if bound is not None:
            if bound[0] != fingerprint:
                raise Conflict()
            return await store.get(user.user_id, bound[1])
    if body.agent is not None:
        conversation, _ = await services.chat.new_conversation(user, agent_id=body.agent)
    else:
        assert body.conversation_id is not None
        conversation = await store.get(user.user_id, body.conversation_id)
    if key is None:
        return conversation
    winner = await store.claim_idempotency_key(user.user_id, key, fingerprint, conversation.id)
    if winner != conversation.id:  # a concurrent retry claimed the key first
        if body.agent is not None:
            await store.delete(user.user_id, conversation.id)
        return await store.get(user.user_id, winner)
    return conversation


async def _held(
    services: Services,
    user: Principal,
    conversation: Conversation,
    accepted: Accepted,
    *,
    stream: bool,
) -> Response:
    """A person holds the conversation: the message is stored for them and nothing replies."""
    if stream:
        return StreamingResponse(
            sse_frames(_nothing(), accepted.frame()), media_type="text/event-stream"
        )
    current = await services.conversations.get(user.user_id, conversation.id)
    return respond(
        ChatAnswer.model_validate(
            {
                "conversation_id": str(conversation.id),
                "message_id": str(accepted.message_id),
                "message": _stored(accepted),
                "reply_id": None,
                "reply": None,
                "usage": None,
                "handoff": current.handoff(),
            }
        )
    )


def _stored(accepted: Accepted) -> dict[str, object]:
    return {"text": accepted.text, "redacted": accepted.redacted}


async def _nothing() -> AsyncIterator[Event]:
    return
    yield  # an async generator with nothing in it


async def _collect(
    conversation: Conversation, accepted: Accepted, events: AsyncIterator[Event]
) -> Response:
    collected = await collect(events)
    body = {
        "conversation_id": str(conversation.id),
        "message_id": str(accepted.message_id),
        "message": _stored(accepted),
        "reply_id": accepted.reply_id,
        "reply": collected.body(),
        "usage": collected.usage,
    }
    failure = collected.failure()
    if failure is not None:
        return respond(
            ChatFailure.model_validate({"error": error_body(failure), **body}),
            status_code=failure.http_status,
        )
    return respond(ChatAnswer.model_validate(body))


# -- reading -----------------------------------------------------------------------


async def list_agents(request: Request) -> Response:
    current_user(request)
    agents = services_of(request).catalog.current.public_agents()
    return respond(AgentList.model_validate({"agents": agents}))


async def list_conversations(request: Request) -> Response:
    user = current_user(request)
    conversations = await services_of(request).conversations.owned_by(user.user_id)
    return respond(
        ConversationList.model_validate({"conversations": [c.public() for c in conversations]})
    )


async def get_conversation(request: Request) -> Response:
    user = current_user(request)
    store = services_of(request).conversations
    conversation = await store.get(user.user_id, request.path_params["conversation_id"])
    messages = await store.messages(conversation.id)
    return respond(
        ConversationDetail.model_validate(
            {"conversation": conversation.public(), "messages": [m.public() for m in messages]}
        )
    )


async def delete_conversation(request: Request) -> Response:
    user = current_user(request)
    services = services_of(request)
    conversation = await services.conversations.get(
        user.user_id, request.path_params["conversation_id"]
    )
    if await services.replies.running_in(str(conversation.id)) is not None:
        raise Busy("A reply is still running; stop it before deleting the conversation.")
    await services.conversations.delete(user.user_id, conversation.id)
    await services.chat.memory.forget(conversation.id)
    return Response(status_code=204)


async def usage(request: Request) -> Response:
    user = current_user(request)
    days = query_int(request, "days", default=30, low=1, high=366)
    report = await services_of(request).ledger.usage_report(user.user_id, days=days)
    return respond(UsageReport.model_validate({"usage": report}))


# -- admin ---------------------------------------------------------------------------


def _admin(request: Request) -> Principal:
    user = current_user(request)
    if not user.admin:
        raise Forbidden("This needs the admin role.")
    return user


async def handoffs(request: Request) -> Response:
    _admin(request)
    limit = query_int(request, "limit", default=100, low=1, high=1000)
    handoffs = await services_of(request).ledger.handoffs(limit=limit)
    return respond(HandoffList.model_validate({"handoffs": handoffs}))


async def reload_catalog(request: Request) -> Response:
    _admin(request)
    try:
        catalog = await services_of(request).reload()
    except CatalogError as error:
        return error_response(
            BadRequest("The new catalog is invalid; the old one stays."), problems=error.problems
        )
    return respond(Reloaded(version=catalog.version, agents=sorted(catalog.agents)))


def rest_routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat", chat, methods=["POST"]),
        Route("/v1/agents", list_agents, methods=["GET"]),
        Route("/v1/conversations", list_conversations, methods=["GET"]),
        Route("/v1/conversations/{conversation_id}", get_conversation, methods=["GET"]),
        Route("/v1/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
        Route("/v1/usage", usage, methods=["GET"]),
        Route("/v1/admin/handoffs", handoffs, methods=["GET"]),
        Route("/v1/admin/reload", reload_catalog, methods=["POST"]),
    ]
