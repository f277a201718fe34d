"""OpenAI's chat completion and model list shapes, as much of them as Parley speaks."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from parley.transport.compat.shapes import ParleyInfo, Shape, text_parts
from parley.transport.fields import Identifier, Text

# -- requests ----------------------------------------------------------------------

Content = Annotated[Text | None, BeforeValidator(text_parts("text"))]


class Message(BaseModel):
    # ``name``, ``audio``, ``refusal`` and the like carry nothing Parley uses.
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Content = None
    tool_calls: list[Any] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What Parley reads of a request.

    Other fields (``temperature``, ``max_tokens``, ``user``, …) are accepted
    and ignored: the agent's settings decide them, as for every Parley turn.
    """

    model_config = ConfigDict(extra="ignore")

    model: Identifier
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        # The caller would wait for tool calls that never come: say so instead.
        if value:
            raise PydanticCustomError(
                "tools_unsupported",
                "Parley agents call their own tools on the server; send no tools",
            )
        return value

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


# -- responses ---------------------------------------------------------------------


class Usage(Shape):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(Shape):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(Shape):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(Shape):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    parley: ParleyInfo


class Delta(Shape):
    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"role", "content"})

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(Shape):
    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: Literal["stop"] | None = None


class ChatCompletionChunk(Shape):
    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"usage", "parley"})

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    parley: ParleyInfo | None = None


class Model(Shape):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: Literal["parley"] = "parley"
    # Not OpenAI's, but read by clients that show names (Open WebUI among them).
    name: str
    description: str


class ModelList(Shape):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorDetail(Shape):
    message: str
    type: str
    param: str | None
    code: str


class ErrorBody(Shape):
    error: ErrorDetail
