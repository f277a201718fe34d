"""Every HTTP route of the app, described: one :class:`Operation` per method and path.

A new route adds one entry here (its body model, its answers, the errors of
its own); the test that walks the app's routes fails until it does. Routes
that are not API (pages, static files, the WebSocket) are listed in
:data:`NOT_DESCRIBED` with the reason.
"""

from __future__ import annotations

from parley.transport.bodies.admin import (
    CatalogRefused,
    Deliveries,
    HandoffList,
    Posted,
    Queue,
    Reloaded,
    ReviewPage,
    Transcript,
)
from parley.transport.bodies.agents import AgentList
from parley.transport.bodies.auth import (
    DevLoginRequest,
    GuestToken,
    Session,
    SessionRequest,
    SessionState,
)
from parley.transport.bodies.conversations import (
    ConversationDetail,
    ConversationList,
    FeedbackGiven,
    HandoffState,
    Renamed,
    UsageReport,
)
from parley.transport.bodies.knowledge import Collections, Documents, Uploaded
from parley.transport.bodies.replies import (
    ChatAnswer,
    ChatFailure,
    Confirmed,
    FollowedReply,
    FollowFailure,
)
from parley.transport.bodies.service import Health, NotReady, Ready
from parley.transport.compat import anthropic_shapes, openai_shapes
from parley.transport.guest import GuestRequest
from parley.transport.openapi.registry import (
    Access,
    Answer,
    Operation,
    Parameter,
    answer,
    choice,
    events,
    integer,
    nothing,
    streamed,
    text,
)
from parley.transport.operators import OperatorMessage
from parley.transport.replies import ConfirmBody
from parley.transport.rest import ChatBody
from parley.transport.user_actions import FeedbackBody, HandoffBody, RenameBody

CONVERSATION = "/v1/conversations/{conversation_id}"
ADMIN_CONVERSATION = "/v1/admin/conversations/{conversation_id}"
DOCUMENTS = "/v1/admin/knowledge/{collection}/documents"

_STREAMED = "With `stream: true`, the reply's frames as Server-Sent Events named after their type."
_TURN_HEADERS = {
    "Parley-Conversation-Id": "The conversation the turn is stored in.",
    "Parley-Reply-Id": "The reply's id (absent while a person holds the conversation).",
}
_CONVERSATION_HEADER = Parameter(
    "Parley-Conversation-Id",
    "Continue this conversation of yours (its agent must be `model`); a new one without it.",
)
_COOKIE = {"set-cookie": "The httpOnly session cookie (`parley_session`)."}


def _limit(high: int, default: int) -> Parameter:
    return integer("limit", f"At most this many (default {default}).", low=1, high=high)


_REVIEW_FILTERS = (
    Parameter("agent", "Only this agent's conversations."),
    choice("status", "Only conversations in this state.", "needs_human", "taken", "normal"),
    choice("feedback", "Only conversations with this feedback.", "down", "up", "any", "none"),
    Parameter("action", "Only conversations with a rule event of this action (`handoff`…)."),
    Parameter("user", "Only this user's conversations."),
    Parameter("before", "The `next_before` cursor of the previous page."),
)

OPERATIONS: tuple[Operation, ...] = (
    # -- service ------------------------------------------------------------------------
    Operation(
        "GET",
        "/health",
        "Liveness: the process serves HTTP",
        "service",
        {200: answer(Health, "Alive.")},
        access=Access.PUBLIC,
    ),
    Operation(
        "GET",
        "/ready",
        "Readiness: Postgres, Redis and the catalog are usable",
        "service",
        {
            200: answer(Ready, "Ready."),
            503: answer(NotReady, "Not ready; `failing` names what is not."),
        },
        access=Access.PUBLIC,
    ),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics (only with PARLEY_METRICS_TOKEN)",
        "service",
        {200: text("text/plain", "Prometheus text format (OpenMetrics when asked for).")},
        access=Access.METRICS,
    ),
    Operation(
        "GET",
        "/openapi.json",
        "This document",
        "service",
        {
            200: Answer(
                "The OpenAPI 3.1 description of this API.",
                media_type="application/json",
                schema={"type": "object"},
            )
        },
        access=Access.PUBLIC,
    ),
    # -- auth -----------------------------------------------------------------------------
    Operation(
        "GET",
        "/auth/session",
        "Whether this browser is signed in",
        "auth",
        {200: answer(SessionState, "Signed in or not; never a 401.")},
        access=Access.PUBLIC,
    ),
    Operation(
        "POST",
        "/auth/session",
        "Turn a token into the browser's session cookie",
        "auth",
        {200: answer(Session, "Signed in; the cookie is set.", headers=_COOKIE)},
        access=Access.PUBLIC,
        description='The token comes in the Authorization header or as `{"token"}`.',
        body=SessionRequest,
        body_required=False,
        errors=(401, 403, 413),
    ),
    Operation(
        "DELETE",
        "/auth/session",
        "Sign out: clear the session cookie",
        "auth",
        {204: nothing("Signed out.")},
        access=Access.PUBLIC,
        errors=(403,),
    ),
    Operation(
        "GET",
        "/auth/me",
        "The current user",
        "auth",
        {200: answer(Session, "Who the token or cookie belongs to.")},
    ),
    Operation(
        "POST",
        "/auth/dev-login",
        "Sign in by name (only with dev login enabled)",
        "auth",
        {200: answer(Session, "Signed in; the cookie is set.", headers=_COOKIE)},
        access=Access.PUBLIC,
        body=DevLoginRequest,
        example={"name": "Alice"},
        errors=(403, 404, 413),
    ),
    Operation(
        "POST",
        "/v1/guest",
        "A short-lived token for an anonymous visitor (the widget)",
        "auth",
        {200: answer(GuestToken, "The token, when it expires, and the guest's id.")},
        access=Access.PUBLIC,
        description=(
            "Only agents with a `guests` section in agents.yaml take guests. A browser on "
            "another site must be one of the agent's `sites`. The token opens the chat "
            "WebSocket with that agent and nothing else; limited per client address and "
            "per site (429 with `Retry-After`)."
        ),
        body=GuestRequest,
        errors=(403, 404),
    ),
    # -- chat ------------------------------------------------------------------------------
    Operation(
        "POST",
        "/v1/chat",
        "Send a message and get the agent's reply",
        "chat",
        {
            200: streamed(
                ChatAnswer,
                "The reply, collected until it ends or waits for a tool approval. " + _STREAMED,
            )
        },
        description="Give `agent` to start a conversation or `conversation_id` to continue "
        "one. `client_id` (or the Idempotency-Key header) makes a retry safe.",
        body=ChatBody,
        example={"agent": "agent_gamma", "message": "My laptop will not boot"},
        headers=(
            Parameter("Idempotency-Key", "Retry-safe key; it becomes the message's client_id."),
        ),
        error_model=ChatFailure,
        errors=(404, 409, 413, 422, 503),
    ),
    Operation(
        "GET",
        "/v1/replies/{reply_id}",
        "Follow a reply: collected, or streamed from a frame on",
        "chat",
        {
            200: streamed(
                FollowedReply,
                "The reply from after `after_seq`, collected until it ends or waits for a "
                "tool approval; with `stream=true`, its frames as Server-Sent Events.",
            )
        },
        query=(
            integer("after_seq", "Read from after this frame (default 0).", low=0, high=10_000_000),
            choice("stream", "`true` or `1` for Server-Sent Events.", "true", "1", "false", "0"),
        ),
        error_model=FollowFailure,
        errors=(404, 503),
    ),
    Operation(
        "POST",
        "/v1/replies/{reply_id}/confirm",
        "Approve or decline a tool call that waits for it",
        "chat",
        {200: answer(Confirmed, "Recorded; follow the reply to see it continue.")},
        body=ConfirmBody,
        example={"call_id": "call_1", "approve": True},
        errors=(404, 422),
    ),
    Operation(
        "GET",
        "/v1/agents",
        "The agents you can talk to",
        "chat",
        {200: answer(AgentList, "Named agents, in catalog order.")},
    ),
    # -- conversations ------------------------------------------------------------------------
    Operation(
        "GET",
        "/v1/conversations",
        "Your conversations",
        "conversations",
        {200: answer(ConversationList, "Newest activity first.")},
    ),
    Operation(
        "GET",
        CONVERSATION,
        "One of your conversations, with its messages",
        "conversations",
        {200: answer(ConversationDetail, "The conversation and its messages, oldest first.")},
        errors=(404,),
    ),
    Operation(
        "PATCH",
        CONVERSATION,
        "Rename a conversation",
        "conversations",
        {200: answer(Renamed, "Renamed.")},
        body=RenameBody,
        example={"title": "Laptop will not boot"},
        errors=(404,),
    ),
    Operation(
        "DELETE",
        CONVERSATION,
        "Delete a conversation",
        "conversations",
        {204: nothing("Deleted.")},
        errors=(404, 409),
    ),
    Operation(
        "POST",
        f"{CONVERSATION}/handoff",
        "Ask for a person",
        "conversations",
        {200: answer(HandoffState, "The conversation waits for a person (or has one).")},
        body=HandoffBody,
        example={"reason": "I would rather talk to a person."},
        body_required=False,
        errors=(404,),
    ),
    Operation(
        "POST",
        "/v1/messages/{message_id}/feedback",
        "Rate a reply",
        "conversations",
        {200: answer(FeedbackGiven, "Stored; it replaces an earlier rating.")},
        body=FeedbackBody,
        example={"rating": "up", "comment": "Clear and quick."},
        errors=(404,),
    ),
    Operation(
        "GET",
        f"{CONVERSATION}/sources/{{chunk_id}}",
        "A knowledge passage a reply cited, as plain text",
        "conversations",
        {200: text("text/plain", "The passage, under a policy that runs and loads nothing.")},
        errors=(404,),
    ),
    Operation(
        "GET",
        "/v1/usage",
        "Your token usage and cost, per day, agent and model",
        "conversations",
        {200: answer(UsageReport, "Newest day first.")},
        query=(integer("days", "How many days back (default 30).", low=1, high=366),),
    ),
    # -- compatible APIs ---------------------------------------------------------------------
    Operation(
        "GET",
        "/v1/models",
        "OpenAI: the agents, as models",
        "openai",
        {200: answer(openai_shapes.ModelList, "One model per named agent.")},
        error_model=openai_shapes.ErrorBody,
    ),
    Operation(
        "POST",
        "/v1/chat/completions",
        "OpenAI: a chat completion by an agent",
        "openai",
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
        error_model=openai_shapes.ErrorBody,
        errors=(404, 409, 503),
    ),
    Operation(
        "POST",
        "/v1/messages",
        "Anthropic: a message by an agent",
        "anthropic",
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
        error_model=anthropic_shapes.ErrorBody,
        errors=(404, 409, 413, 503),
    ),
    # -- administration ---------------------------------------------------------------------
    Operation(
        "GET",
        "/v1/admin/handoffs",
        "Rule-triggered handoffs, newest first",
        "admin",
        {200: answer(HandoffList, "The handoffs.")},
        access=Access.ADMIN,
        query=(_limit(1000, 100),),
    ),
    Operation(
        "POST",
        "/v1/admin/reload",
        "Reload the catalog from disk",
        "admin",
        {200: answer(Reloaded, "The new catalog is in use.")},
        access=Access.ADMIN,
        error_answers={
            400: answer(CatalogRefused, "The new catalog is invalid; the old one stays."),
        },
    ),
    Operation(
        "GET",
        "/v1/admin/queue",
        "Conversations waiting for a person, or held by one",
        "operators",
        {200: answer(Queue, "Longest waiting first.")},
        access=Access.ADMIN,
        query=(_limit(500, 100),),
    ),
    Operation(
        "GET",
        "/v1/admin/events",
        "Operations events, live (hints to read again)",
        "operators",
        {200: events("Server-Sent Events; the stream ends after five minutes (reconnect).")},
        access=Access.ADMIN,
    ),
    Operation(
        "POST",
        f"{ADMIN_CONVERSATION}/takeover",
        "Take a conversation over: the agent pauses",
        "operators",
        {200: answer(HandoffState, "You hold it.")},
        access=Access.ADMIN,
        errors=(404, 422),
    ),
    Operation(
        "POST",
        f"{ADMIN_CONVERSATION}/release",
        "Hand a conversation back to the agent",
        "operators",
        {200: answer(HandoffState, "The agent replies again.")},
        access=Access.ADMIN,
        errors=(404, 422),
    ),
    Operation(
        "POST",
        f"{ADMIN_CONVERSATION}/messages",
        "Write to the user of a conversation you hold",
        "operators",
        {200: answer(Posted, "Sent, as a reply of its own.")},
        access=Access.ADMIN,
        body=OperatorMessage,
        example={"text": "Hello, this is Sam from support."},
        errors=(404, 409, 413, 422),
    ),
    Operation(
        "GET",
        "/v1/admin/webhooks/deliveries",
        "The handoff webhook's recent deliveries",
        "operators",
        {200: answer(Deliveries, "Newest first.")},
        access=Access.ADMIN,
        query=(_limit(500, 50),),
    ),
    Operation(
        "GET",
        "/v1/admin/conversations",
        "Review: everyone's conversations, filtered and paged",
        "review",
        {200: answer(ReviewPage, "Newest activity first.")},
        access=Access.ADMIN,
        query=(*_REVIEW_FILTERS, _limit(200, 50)),
    ),
    Operation(
        "GET",
        ADMIN_CONVERSATION,
        "Review: any conversation's whole transcript",
        "review",
        {200: answer(Transcript, "The transcript, with handoffs and takeovers.")},
        access=Access.ADMIN,
        errors=(404,),
    ),
    Operation(
        "GET",
        "/v1/admin/export.jsonl",
        "Review: transcripts as JSON Lines",
        "review",
        {200: text("application/x-ndjson", "One transcript per line (as the review's).")},
        access=Access.ADMIN,
        query=(*_REVIEW_FILTERS, _limit(100_000, 100_000)),
    ),
    Operation(
        "GET",
        "/v1/admin/knowledge",
        "Knowledge collections",
        "knowledge",
        {200: answer(Collections, "Each collection, its size and the agents that search it.")},
        access=Access.ADMIN,
        errors=(404,),
    ),
    Operation(
        "GET",
        DOCUMENTS,
        "The documents of a collection",
        "knowledge",
        {200: answer(Documents, "The documents.")},
        access=Access.ADMIN,
        errors=(404,),
    ),
    Operation(
        "PUT",
        f"{DOCUMENTS}/{{name}}",
        "Upload a document; it is searchable when this returns",
        "knowledge",
        {
            200: answer(Uploaded, "Replaced."),
            201: answer(Uploaded, "Added."),
        },
        access=Access.ADMIN,
        raw_body=Answer(
            "The document's bytes (Markdown, text, HTML or PDF, by the name's extension).",
            media_type="application/octet-stream",
            schema={"type": "string", "format": "binary"},
        ),
        errors=(404, 413, 422),
    ),
    Operation(
        "DELETE",
        f"{DOCUMENTS}/{{name}}",
        "Delete an uploaded document",
        "knowledge",
        {204: nothing("Deleted.")},
        access=Access.ADMIN,
        errors=(404, 422),
    ),
)

# Routes that are not API, and why they are not described.
NOT_DESCRIBED: dict[tuple[str, str], str] = {
    ("GET", "/"): "the chat page (HTML)",
    ("GET", "/console"): "the operator console (HTML)",
    ("GET", "/docs"): "this API's documentation page (HTML)",
    ("GET", "/static/*"): "the pages' assets",
    ("GET", "/static/client/*"): "the JavaScript client's modules",
    ("GET", "/widget"): "the embeddable widget's chat page (HTML)",
    ("GET", "/widget.js"): "the widget's loader script",
    ("GET", "/widget/demo"): "a page to try the widget on (HTML)",
    ("GET", "/ws"): "the WebSocket protocol, described in docs/protocol.md",
}
