"""The frames the server sends, as types: one definition for the server and its clients.

Each server frame is a frozen dataclass whose fields, in order, are the JSON
object's keys after ``type`` (``docs/protocol.md`` describes them). A frame
becomes JSON through :meth:`ServerFrame.to_dict`, and JSON becomes a frame
through :func:`parse_frame`, so a client (``parley.client``) reads exactly
what the server writes. The module imports nothing of the server: it can be
imported without configuration or a running event loop.

Frames a client sends are validated at the edge instead
(``parley.transport.frames``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, NotRequired, TypedDict


class ReplyStatus(StrEnum):
    """How a reply ended: the ``status`` of its ``done`` frame and of its stored message."""

    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"
    BLOCKED = "blocked"
    INTERRUPTED = "interrupted"


class Author(TypedDict):
    """Who wrote a reply that a person, not the agent, wrote."""

    kind: str  # "operator"
    name: str


class AgentInfo(TypedDict):
    id: str
    name: str
    personality: str
    rules: str
    max_message_chars: int  # the longest user message this agent accepts


class ActiveReply(TypedDict):
    reply_id: str
    last_seq: int


class HandoffState(TypedDict):
    state: str  # none, waiting, taken
    by: NotRequired[Author]


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    estimated: bool


# A field with this metadata is left out of the JSON object while it is None.
_OPTIONAL = {"optional": True}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFrame:
    """A frame the server sends; subclasses name their ``type``."""

    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The frame's JSON object: ``type`` first, then the fields in order."""
        shape: dict[str, Any] = {"type": self.type}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None and item.metadata.get("optional"):
                continue
            shape[item.name] = value
        return shape


# -- a reply's frames ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaFrame(ServerFrame):
    """The next piece of a reply's text.

    The server builds agents' deltas as JSON by hand on the hot path
    (``parley.replies.events``); this type is how they are read.
    """

    type: ClassVar[str] = "delta"
    reply_id: str
    seq: int
    text: str
    author: Author | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallFrame(ServerFrame):
    type: ClassVar[str] = "tool_call"
    reply_id: str
    seq: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    status: str  # awaiting_confirmation or running


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResultFrame(ServerFrame):
    type: ClassVar[str] = "tool_result"
    reply_id: str
    seq: int
    call_id: str
    tool: str
    status: str  # ok, error, refused, declined or interrupted
    summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcesFrame(ServerFrame):
    type: ClassVar[str] = "sources"
    reply_id: str
    seq: int
    sources: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeFrame(ServerFrame):
    """A business rule acted on the reply (or on the message it answers)."""

    type: ClassVar[str] = "notice"
    reply_id: str
    rule: str
    action: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DoneFrame(ServerFrame):
    """The reply ended and is stored; always its last frame."""

    type: ClassVar[str] = "done"
    reply_id: str
    message_id: str | None
    status: ReplyStatus = field(metadata={"parse": ReplyStatus})
    usage: Usage
    author: Author | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResyncFrame(ServerFrame):
    """A reply older than the resume window: its stored message instead of its frames."""

    type: ClassVar[str] = "resync"
    reply_id: str
    message: dict[str, Any]


# -- answers to the client's frames ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorFrame(ServerFrame):
    """A refused frame, or a reply's failure.

    It names what it answers: a reply's failure its ``reply_id`` (a ``done``
    follows); a refused ``message`` its ``client_id``; ``confirm`` its
    ``reply_id`` and ``call_id``; ``feedback`` its ``message_id``; ``cancel``
    and ``resume`` their ``reply_id`` and ``request``; ``start``, ``auth`` and
    ``request_human`` their ``request`` (the frame's type). A frame that could
    not be read at all gets an error naming nothing.
    """

    type: ClassVar[str] = "error"
    reply_id: str | None = field(default=None, metadata=_OPTIONAL)
    code: str
    message: str
    client_id: str | None = field(default=None, metadata=_OPTIONAL)
    call_id: str | None = field(default=None, metadata=_OPTIONAL)
    message_id: str | None = field(default=None, metadata=_OPTIONAL)
    request: str | None = field(
        default=None, metadata=_OPTIONAL
    )  # the refused frame's type, where no id names it


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFrame(ServerFrame):
    """The answer to ``start``: the conversation, its agent and its whole history."""

    type: ClassVar[str] = "session"
    session_id: str
    conversation_id: str
    agent: AgentInfo
    history: list[dict[str, Any]]
    active_reply: ActiveReply | None
    handoff: HandoffState


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptedFrame(ServerFrame):
    """A ``message`` is stored; ``text`` is what was stored (input redactions applied)."""

    type: ClassVar[str] = "accepted"
    client_id: str
    message_id: str
    reply_id: str | None  # None: a person holds the conversation, the agent does not reply
    text: str
    redacted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PongFrame(ServerFrame):
    type: ClassVar[str] = "pong"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticatedFrame(ServerFrame):
    type: ClassVar[str] = "authenticated"
    expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffFrame(ServerFrame):
    type: ClassVar[str] = "handoff"
    conversation_id: str
    state: str  # waiting, taken or released
    by: Author | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True, slots=True, kw_only=True)
class TitleFrame(ServerFrame):
    type: ClassVar[str] = "title"
    conversation_id: str
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackSavedFrame(ServerFrame):
    type: ClassVar[str] = "feedback_saved"
    message_id: str
    rating: str  # up or down
    comment: str | None
    updated_at: str


FRAME_TYPES: Mapping[str, type[ServerFrame]] = {
    frame.type: frame
    for frame in (
        DeltaFrame,
        ToolCallFrame,
        ToolResultFrame,
        SourcesFrame,
        NoticeFrame,
        DoneFrame,
        ResyncFrame,
        ErrorFrame,
        SessionFrame,
        AcceptedFrame,
        PongFrame,
        AuthenticatedFrame,
        HandoffFrame,
        TitleFrame,
        FeedbackSavedFrame,
    )
}


def parse_frame(data: Mapping[str, Any]) -> ServerFrame:
    """The typed frame of a decoded server frame.

    Keys this version does not know are ignored, so an older client reads a
    newer server's frames. Raises ``ValueError`` for an unknown ``type`` or a
    missing field.
    """
    kind = data.get("type")
    frame_type = FRAME_TYPES.get(kind) if isinstance(kind, str) else None
    if frame_type is None:
        raise ValueError(f"unknown server frame type: {kind!r}")
    values: dict[str, Any] = {}
    for item in fields(frame_type):
        if item.name in data:
            parse: Callable[[Any], Any] = item.metadata.get("parse", _same)
            values[item.name] = parse(data[item.name])
    try:
        return frame_type(**values)
    except TypeError as error:
        raise ValueError(f"malformed {kind} frame: {error}") from None


def _same(value: Any) -> Any:
    return value
