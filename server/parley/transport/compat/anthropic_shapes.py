"""Anthropic's Messages API shapes, as much of them as Parley speaks."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from parley.transport.compat.shapes import ParleyInfo, Shape, text_parts
from parley.transport.fields import Identifier, Text

# -- requests ----------------------------------------------------------------------

Content = Annotated[Text, BeforeValidator(text_parts("text"))]


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant"]
    content: Content


class MessagesRequest(BaseModel):
    """What Parley reads of a request.

    ``system`` is read and left out: the agent's own system prompt is the
    only one. ``max_tokens``, ``temperature`` and the like are accepted and
    ignored: the agent's settings decide them, as for every Parley turn.
    """

    model_config = ConfigDict(extra="ignore")

    model: Identifier
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    tools: list[Any] | None = None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise PydanticCustomError(
                "tools_unsupported",
                "Parley agents call their own tools on the server; send no tools",
            )
        return value


# -- responses ---------------------------------------------------------------------

StopReason = Literal["end_turn"]


class TextBlock(Shape):
    type: Literal["text"] = "text"
    text: str


class Usage(Shape):
    input_tokens: int
    output_tokens: int


class MessageResponse(Shape):
    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"parley"})

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[TextBlock]
    stop_reason: StopReason | None
    stop_sequence: None = None
    usage: Usage
    parley: ParleyInfo | None = None  # left out of ``message_start``, when nothing is known yet


class MessageStart(Shape):
    type: Literal["message_start"] = "message_start"
    message: MessageResponse


class ContentBlockStart(Shape):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: TextBlock


class TextDelta(Shape):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ContentBlockDelta(Shape):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: TextDelta


class ContentBlockStop(Shape):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class MessageDeltaBody(Shape):
    stop_reason: StopReason
    stop_sequence: None = None


class MessageDelta(Shape):
    type: Literal["message_delta"] = "message_delta"
    delta: MessageDeltaBody
    usage: Usage  # the totals: the input is only known once the reply is stored
    parley: ParleyInfo


class MessageStop(Shape):
    type: Literal["message_stop"] = "message_stop"


class ErrorDetails(Shape):
    error_code: str  # Parley's code (docs/protocol.md), where the SDKs look for a stable one


class ErrorDetail(Shape):
    type: str
    message: str
    details: ErrorDetails


class ErrorBody(Shape):
    type: Literal["error"] = "error"
    error: ErrorDetail
