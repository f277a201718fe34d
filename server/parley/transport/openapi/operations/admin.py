"""Administration: the catalog, the operators' desk and the review of conversations."""

from __future__ import annotations

from functools import partial

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
from parley.transport.bodies.conversations import HandoffState
from parley.transport.openapi.registry import (
    Access,
    Operation,
    Parameter,
    answer,
    choice,
    events,
    integer,
    ok,
    text,
)
from parley.transport.operators import OperatorMessage

# Every route here needs the admin role.
admin = partial(Operation, tag="admin", access=Access.ADMIN)
operators = partial(Operation, tag="operators", access=Access.ADMIN)
review = partial(Operation, tag="review", access=Access.ADMIN)

ADMIN_CONVERSATION = "/v1/admin/conversations/{conversation_id}"


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

ADMIN = (
    admin(
        "GET",
        "/v1/admin/handoffs",
        "Rule-triggered handoffs, newest first",
        ok(HandoffList, "The handoffs."),
        query=(_limit(1000, 100),),
    ),
    admin(
        "POST",
        "/v1/admin/reload",
        "Reload the catalog from disk",
        ok(Reloaded, "The new catalog is in use."),
        error_answers={
            400: answer(CatalogRefused, "The new catalog is invalid; the old one stays."),
        },
    ),
    operators(
        "GET",
        "/v1/admin/queue",
        "Conversations waiting for a person, or held by one",
        ok(Queue, "Longest waiting first."),
        query=(_limit(500, 100),),
    ),
    operators(
        "GET",
        "/v1/admin/events",
        "Operations events, live (hints to read again)",
        {200: events("Server-Sent Events; the stream ends after five minutes (reconnect).")},
    ),
    operators(
        "POST",
        f"{ADMIN_CONVERSATION}/takeover",
        "Take a conversation over: the agent pauses",
        ok(HandoffState, "You hold it."),
        errors=(404, 422),
    ),
    operators(
        "POST",
        f"{ADMIN_CONVERSATION}/release",
        "Hand a conversation back to the agent",
        ok(HandoffState, "The agent replies again."),
        errors=(404, 422),
    ),
    operators(
        "POST",
        f"{ADMIN_CONVERSATION}/messages",
        "Write to the user of a conversation you hold",
        ok(Posted, "Sent, as a reply of its own."),
        body=OperatorMessage,
        example={"text": "Hello, this is Sam from support."},
        errors=(404, 409, 413, 422),
    ),
    operators(
        "GET",
        "/v1/admin/webhooks/deliveries",
        "The handoff webhook's recent deliveries",
        ok(Deliveries, "Newest first."),
        query=(_limit(500, 50),),
    ),
    review(
        "GET",
        "/v1/admin/conversations",
        "Review: everyone's conversations, filtered and paged",
        ok(ReviewPage, "Newest activity first."),
        query=(*_REVIEW_FILTERS, _limit(200, 50)),
    ),
    review(
        "GET",
        ADMIN_CONVERSATION,
        "Review: any conversation's whole transcript",
        ok(Transcript, "The transcript, with handoffs and takeovers."),
        errors=(404,),
    ),
    review(
        "GET",
        "/v1/admin/export.jsonl",
        "Review: transcripts as JSON Lines",
        {200: text("application/x-ndjson", "One transcript per line (as the review's).")},
        query=(*_REVIEW_FILTERS, _limit(100_000, 100_000)),
    ),
)
