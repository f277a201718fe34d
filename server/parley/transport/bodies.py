"""The JSON bodies of Parley's own REST answers, as pydantic models.

They are what ``GET /openapi.json`` publishes (see :mod:`parley.transport.openapi`),
so a field an endpoint sends that is not here, or one here that it does not
send, is a schema violation the API tests catch. Objects are closed
(``additionalProperties: false``) where Parley decides every field; rows that
carry whatever a table holds (webhook deliveries, handoff records) are open.

Request bodies live next to the endpoints that parse them (``ChatBody``,
``ConfirmBody``…); the compatible APIs' shapes live in
:mod:`parley.transport.compat`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from parley.errors import ErrorCode, ParleyError


class Closed(BaseModel):
    """A closed JSON object: every field it may carry is declared."""

    model_config = ConfigDict(extra="forbid")


# -- errors ----------------------------------------------------------------------------


class ErrorDetail(Closed):
    code: ErrorCode = Field(description="Stable error code (docs/protocol.md).")
    message: str = Field(description="Readable explanation; may change between versions.")


class ErrorBody(Closed):
    """Every error of Parley's own endpoints: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, error: ParleyError) -> ErrorBody:
        return cls(error=ErrorDetail(code=error.code, message=error.message))


class CatalogRefused(ErrorBody):
    """``POST /v1/admin/reload`` with a catalog that does not load: what is wrong with it."""

    problems: list[str] | None = None


# -- service ---------------------------------------------------------------------------


class Health(Closed):
    status: Literal["ok"]


class Ready(Closed):
    status: Literal["ready"]
    catalog_version: str


class NotReady(Closed):
    status: Literal["starting", "unavailable"]
    failing: list[str] = Field(description="What is not usable: postgres, redis, catalog…")


# -- auth ------------------------------------------------------------------------------


class SessionRequest(Closed):
    """``POST /auth/session``: the token, unless it comes in the Authorization header."""

    token: str | None = Field(default=None, min_length=1)


class DevLoginRequest(Closed):
    name: str = Field(min_length=1, max_length=64, description="Any display name.")


class User(Closed):
    id: str
    name: str
    admin: bool


class Session(Closed):
    user: User


class SessionState(Closed):
    """``GET /auth/session``: whether this browser is signed in (never a 401)."""

    signed_in: bool
    user: User | None


# -- agents and conversations ------------------------------------------------------------


class PersonalitySummary(Closed):
    id: str
    name: str
    tone: str
    traits: list[str]


class Domain(Closed):
    id: str
    name: str
    description: str


class AgentInfo(Closed):
    id: str
    name: str
    description: str
    personality: PersonalitySummary
    domain: Domain


class AgentList(Closed):
    agents: list[AgentInfo]


class Author(Closed):
    """A person who wrote in a conversation instead of the agent (never their user id)."""

    kind: Literal["operator"]
    name: str


class AdminAuthor(Author):
    id: str | None = None  # only admins see which operator it was


class Handoff(Closed):
    state: Literal["none", "waiting", "taken"]
    by: Author | None = None


class ConversationInfo(Closed):
    id: str
    title: str | None
    agent_id: str
    personality: str
    rules: str
    message_count: int
    needs_human: bool
    handoff_state: Literal["none", "waiting", "taken"]
    created_at: str
    updated_at: str


class ConversationList(Closed):
    conversations: list[ConversationInfo]


class Usage(Closed):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float | None
    estimated: bool | None


class Notice(Closed):
    rule: str
    action: str
    detail: str


class ToolCall(Closed):
    call_id: str
    tool: str
    arguments: Any
    status: str
    summary: str


class Source(Closed):
    """A knowledge passage a reply was given, as its citation ``[n]`` links to it."""

    n: int
    title: str
    uri: str = Field(description="GET it for the passage as plain text.")
    snippet: str
    score: float


class Rating(Closed):
    rating: Literal["up", "down"]
    comment: str | None


class MessageInfo(Closed):
    id: str
    role: Literal["user", "assistant"]
    content: str
    status: str
    created_at: str
    redacted: bool | None = None
    reply_id: str | None = None
    author: Author | None = None
    usage: Usage | None = None
    notices: list[Notice] | None = None
    tool_calls: list[ToolCall] | None = None
    feedback: Rating | None = None
    sources: list[Source] | None = None


class ConversationDetail(Closed):
    conversation: ConversationInfo
    messages: list[MessageInfo]


class Renamed(Closed):
    conversation: ConversationInfo


class HandoffState(Closed):
    conversation_id: str
    handoff: Handoff


class FeedbackInfo(Closed):
    message_id: str
    rating: Literal["up", "down"]
    comment: str | None
    updated_at: str


class FeedbackGiven(Closed):
    feedback: FeedbackInfo


class UsageRow(Closed):
    day: str
    agent_id: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    estimated: bool


class UsageReport(Closed):
    usage: list[UsageRow]


# -- replies ------------------------------------------------------------------------------


class Reply(Closed):
    """A reply collected into one answer (until it ends, or waits for an approval)."""

    message_id: str | None
    text: str
    status: str = Field(
        description="complete, blocked, cancelled, failed, interrupted or awaiting_confirmation"
    )
    notices: list[Notice]
    last_seq: int = Field(description="Continue with GET /v1/replies/{reply_id}?after_seq=…")
    tool_calls: list[ToolCall] | None = None
    sources: list[Source] | None = None


class StoredMessage(Closed):
    """The user's message as it was stored: input redactions applied."""

    text: str
    redacted: bool = Field(description="a rule changed the text before it was stored")


class ChatAnswer(Closed):
    """``POST /v1/chat`` without streaming. With a person holding the conversation,
    nothing replies: ``reply_id``, ``reply`` and ``usage`` are null and ``handoff`` says who."""

    conversation_id: str
    message_id: str
    message: StoredMessage
    reply_id: str | None
    reply: Reply | None
    usage: Usage | None
    handoff: Handoff | None = None


class ChatFailure(ErrorBody):
    """An error; when the reply itself failed before any text, also what was stored."""

    conversation_id: str | None = None
    message_id: str | None = None
    message: StoredMessage | None = None
    reply_id: str | None = None
    reply: Reply | None = None
    usage: Usage | None = None


class FollowedReply(Closed):
    reply_id: str
    reply: Reply
    usage: Usage | None


class FollowFailure(ErrorBody):
    reply_id: str | None = None
    reply: Reply | None = None
    usage: Usage | None = None


class Confirmed(Closed):
    reply_id: str
    call_id: str
    approve: bool


# -- administration ---------------------------------------------------------------------


class HandoffEvent(Closed):
    id: int
    conversation_id: str
    message_id: str | None
    user_id: str
    agent_id: str
    title: str | None
    rule: str
    detail: str
    created_at: str


class HandoffList(Closed):
    handoffs: list[HandoffEvent]


class Reloaded(Closed):
    version: str
    agents: list[str]


class Owner(Closed):
    id: str
    name: str | None


class Ratings(Closed):
    up: int
    down: int


class ListedConversation(ConversationInfo):
    owner: Owner
    handoff: Handoff
    feedback: Ratings


class QueuedConversation(ListedConversation):
    trigger: str | None
    rule: str | None
    reason: str | None
    requested_at: str | None
    last_user_message: str


class Queue(Closed):
    queue: list[QueuedConversation]


class ReviewPage(Closed):
    conversations: list[ListedConversation]
    next_before: str | None = Field(description="Pass as ``before`` for the next page.")


class ReviewedConversation(ConversationInfo):
    owner: Owner
    handoff: Handoff
    taken_by_id: str | None


class ReviewedMessage(MessageInfo):
    author: AdminAuthor | None = None


class Transcript(Closed):
    conversation: ReviewedConversation
    messages: list[ReviewedMessage]
    handoffs: list[dict[str, Any]]
    takeovers: list[dict[str, Any]]


class Posted(Closed):
    message_id: str
    reply_id: str


class Deliveries(Closed):
    deliveries: list[dict[str, Any]] = Field(description="Newest first, with their attempts.")


# -- knowledge ----------------------------------------------------------------------------


class CollectionInfo(Closed):
    id: str
    documents: int
    chunks: int
    agents: list[str]


class Collections(Closed):
    mode: str
    collections: list[CollectionInfo]


class DocumentInfo(Closed):
    collection: str
    name: str
    origin: Literal["catalog", "upload"]
    kind: str
    title: str
    bytes: int
    chunks: int
    sha256: str
    updated_at: str


class Documents(Closed):
    collection: str
    documents: list[DocumentInfo]


class Uploaded(Closed):
    document: DocumentInfo
    changed: bool
    embedding_error: str | None = None


# -- guests (the widget) -----------------------------------------------------------------


class GuestToken(Closed):
    """``POST /v1/guest``: a token that opens a chat with one agent, and the guest's id."""

    token: str = Field(description="A JWT for the chat WebSocket (subprotocol or Authorization).")
    token_type: Literal["Bearer"]
    expires_at: int = Field(description="When the token expires (Unix seconds).")
    expires_in: int = Field(description="Seconds from now until it expires.")
    guest_id: str = Field(
        description="The signed guest id: send it again for a fresh token as the same guest."
    )
    agent: str = Field(description="The one agent the token may chat with.")


def respond(
    body: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` as a JSON answer, with the fields it was given (an omitted one stays out).

    Endpoints build their answers as these models (``Model.model_validate`` of a
    record's public dict, or the fields), so an answer that strays from what
    ``/openapi.json`` says fails in the tests rather than surprising a client.
    """
    return Response(
        body.model_dump_json(exclude_unset=True),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )
