"""Client-to-server WebSocket frames, validated at the edge.

Server frames are typed in :mod:`parley.protocol`; the full protocol is
documented in ``docs/protocol.md``.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from parley.auth.tokens import MAX_TOKEN_CHARS
from parley.errors import BadRequest
from parley.transport.fields import Comment, Identifier, UserText


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartFrame(_Frame):
    type: Literal["start"]
    agent: Identifier | None = None
    conversation_id: Identifier | None = None
    session_id: Identifier | None = None
    personality: Identifier | None = None
    rules: Identifier | None = None

    @model_validator(mode="after")
    def _one_target(self) -> StartFrame:
        pair = self.personality is not None and self.rules is not None
        chosen = [self.agent, self.conversation_id, self.session_id, pair or None]
        if sum(item is not None for item in chosen) != 1:
            raise ValueError(
                "give exactly one of agent, conversation_id, session_id or personality+rules"
            )
        return self


class MessageFrame(_Frame):
    type: Literal["message"]
    client_id: Identifier
    text: UserText


class CancelFrame(_Frame):
    type: Literal["cancel"]
    reply_id: Identifier


class ResumeFrame(_Frame):
    type: Literal["resume"]
    reply_id: Identifier
    after_seq: Annotated[int, Field(ge=0)] = 0


class PingFrame(_Frame):
    type: Literal["ping"]


class AuthFrame(_Frame):
    """A fresh token for the same user, sent before the current one expires."""

    type: Literal["auth"]
    token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_CHARS)]


class ConfirmFrame(_Frame):
    """The user's answer to a tool call waiting for approval."""

    type: Literal["confirm"]
    reply_id: Identifier
    call_id: Identifier
    approve: bool


class FeedbackFrame(_Frame):
    """The user's rating of an assistant message of theirs (a new one replaces the old)."""

    type: Literal["feedback"]
    message_id: Identifier
    rating: Literal["up", "down"]
    comment: Comment | None = None


class RequestHumanFrame(_Frame):
    """The user asks for a person to take the conversation over."""

    type: Literal["request_human"]
    reason: Comment | None = None


ClientFrame = Annotated[
    StartFrame
    | MessageFrame
    | CancelFrame
    | ResumeFrame
    | PingFrame
    | AuthFrame
    | ConfirmFrame
    | FeedbackFrame
    | RequestHumanFrame,
    Field(discriminator="type"),
]
_client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def parse_client_frame(raw: str) -> ClientFrame:
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadRequest("Frames must be JSON objects.") from None
    except RecursionError:  # json recurses per level; 30,000 levels fit in one frame
        raise BadRequest("Frames must not be nested this deeply.") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise BadRequest('Frames must be JSON objects with a "type".')
    try:
        return _client_frame.validate_python(data)
    except ValidationError as error:
        raise BadRequest(_explain(error)) from None


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"][1:]) or "frame"
    if first["type"] == "union_tag_invalid":
        return "Unknown frame type."
    return f"{where}: {first['msg']}".removeprefix("frame: ")
