"""A user's chat over REST: sending, following and confirming replies; their conversations."""

from __future__ import annotations

from functools import partial

from parley.transport.bodies.agents import AgentList
from parley.transport.bodies.conversations import (
    ConversationDetail,
    ConversationList,
    FeedbackGiven,
    HandoffState,
    Renamed,
    UsageReport,
)
from parley.transport.bodies.replies import (
    ChatAnswer,
    ChatFailure,
    Confirmed,
    FollowedReply,
    FollowFailure,
)
from parley.transport.openapi.registry import (
    Operation,
    Parameter,
    choice,
    integer,
    nothing,
    ok,
    streamed,
    text,
)
from parley.transport.replies import ConfirmBody
from parley.transport.rest import ChatBody
from parley.transport.user_actions import FeedbackBody, HandoffBody, RenameBody

chat = partial(Operation, tag="chat")
conversations = partial(Operation, tag="conversations")

CONVERSATION = "/v1/conversations/{conversation_id}"

_STREAMED = "With `stream: true`, the reply's frames as Server-Sent Events named after their type."

CHAT = (
    chat(
        "POST",
        "/v1/chat",
        "Send a message and get the agent's reply",
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
    chat(
        "GET",
        "/v1/replies/{reply_id}",
        "Follow a reply: collected, or streamed from a frame on",
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
    chat(
        "POST",
        "/v1/replies/{reply_id}/confirm",
        "Approve or decline a tool call that waits for it",
        ok(Confirmed, "Recorded; follow the reply to see it continue."),
        body=ConfirmBody,
        example={"call_id": "call_1", "approve": True},
        errors=(404, 422),
    ),
    chat(
        "GET",
        "/v1/agents",
        "The agents you can talk to",
        ok(AgentList, "Named agents, in catalog order."),
    ),
    conversations(
        "GET",
        "/v1/conversations",
        "Your conversations",
        ok(ConversationList, "Newest activity first."),
    ),
    conversations(
        "GET",
        CONVERSATION,
        "One of your conversations, with its messages",
        ok(ConversationDetail, "The conversation and its messages, oldest first."),
        errors=(404,),
    ),
    conversations(
        "PATCH",
        CONVERSATION,
        "Rename a conversation",
        ok(Renamed, "Renamed."),
        body=RenameBody,
        example={"title": "Laptop will not boot"},
        errors=(404,),
    ),
    conversations(
        "DELETE",
        CONVERSATION,
        "Delete a conversation",
        {204: nothing("Deleted.")},
        errors=(404, 409),
    ),
    conversations(
        "POST",
        f"{CONVERSATION}/handoff",
        "Ask for a person",
        ok(HandoffState, "The conversation waits for a person (or has one)."),
        body=HandoffBody,
        body_required=False,
        example={"reason": "I would rather talk to a person."},
        errors=(404,),
    ),
    conversations(
        "POST",
        "/v1/messages/{message_id}/feedback",
        "Rate a reply",
        ok(FeedbackGiven, "Stored; it replaces an earlier rating."),
        body=FeedbackBody,
        example={"rating": "up", "comment": "Clear and quick."},
        errors=(404,),
    ),
    conversations(
        "GET",
        f"{CONVERSATION}/sources/{{chunk_id}}",
        "A knowledge passage a reply cited, as plain text",
        {200: text("text/plain", "The passage, under a policy that runs and loads nothing.")},
        errors=(404,),
    ),
    conversations(
        "GET",
        "/v1/usage",
        "Your token usage and cost, per day, agent and model",
        ok(UsageReport, "Newest day first."),
        query=(integer("days", "How many days back (default 30).", low=1, high=366),),
    ),
)
