"""What the compatible APIs' shapes share: text content parts, and the ``parley`` extension."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer
from pydantic_core import PydanticCustomError

# Between the text parts of one message.
PART_SEPARATOR = "\n"


def text_parts(text_type: str) -> Callable[[object], object]:
    """A before-validator: a list of content parts becomes their joined text.

    Both vendors let a message's content be a string or a list of typed parts
    (text, images, files, tool calls and results). Parley's agents read text;
    any other part is refused by name rather than silently dropped, so the
    caller knows the model never saw it.
    """

    def join(value: object) -> object:
        if not isinstance(value, list):
            return value
        texts: list[str] = []
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else None
            text = part.get("text") if isinstance(part, dict) else None
            if kind != text_type or not isinstance(text, str):
                raise PydanticCustomError(
                    "unsupported_content",
                    "only {expected} content parts are supported, not {kind}",
                    {"expected": repr(text_type), "kind": repr(kind)},
                )
            texts.append(text)
        return PART_SEPARATOR.join(texts)

    return join


class Shape(BaseModel):
    """A response shape: fields in ``omitted_when_none`` are left out rather than sent
    as null, as the vendor does; every other field is always sent."""

    omitted_when_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        omitted = self.omitted_when_none
        return {key: value for key, value in data.items() if not (value is None and key in omitted)}


class Notice(BaseModel):
    rule: str
    action: str
    detail: str


class ToolStep(BaseModel):
    call_id: str
    tool: str
    arguments: Any
    status: str
    summary: str


class ParleyInfo(BaseModel):
    """The ``parley`` extension of a response: what Parley did beyond the vendor's fields."""

    status: str  # complete, blocked, cancelled or held
    conversation_id: str
    reply_id: str | None
    notices: list[Notice]
    tool_calls: list[ToolStep]  # run by the server; never handed to the caller
    cost_usd: float
