"""The vocabulary of the API's description: operations, their inputs and their answers.

An :class:`Operation` says what one route takes (path and query parameters,
request headers, a body model) and what it answers, status by status
(:class:`Answer`: a pydantic model for JSON, or another media type). The
errors every route shares follow from its :class:`Access`, so an entry only
lists the statuses of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel

from parley.transport.bodies.errors import ErrorBody

JSON = "application/json"
EVENTS = "text/event-stream"
_PATH_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]+)?}")


class Access(Enum):
    """Who may call an operation; it decides the security and the shared errors."""

    PUBLIC = "public"  # no token
    USER = "user"  # a user's token: bearer header or the session cookie
    ADMIN = "admin"  # a token with the admin role
    METRICS = "metrics"  # the scrape token (PARLEY_METRICS_TOKEN)


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented response: what it means, and its body (if any)."""

    description: str
    model: type[BaseModel] | None = None  # a JSON body of this shape
    media_type: str | None = None  # another kind of body (events, text, HTML…)
    schema: Mapping[str, Any] | None = None  # its schema, for a body without a model
    alternatives: tuple[type[BaseModel], ...] = ()  # more JSON shapes (``anyOf``)
    headers: Mapping[str, str] = field(default_factory=dict)  # response header: description


def answer(
    model: type[BaseModel], description: str, *, headers: Mapping[str, str] | None = None
) -> Answer:
    """A JSON answer of ``model`` (``headers``: the response headers it sets, described)."""
    return Answer(description, model=model, headers=headers or {})


def ok(
    model: type[BaseModel], description: str, *, headers: Mapping[str, str] | None = None
) -> dict[int, Answer]:
    """The answers of most operations: only 200, a JSON body of ``model``."""
    return {200: answer(model, description, headers=headers)}


def event_schema(*, json_data: bool = True) -> dict[str, Any]:
    """One Server-Sent Event (OpenAPI before 3.2 describes a stream by its items)."""
    data: dict[str, Any] = {"type": "string"}
    if json_data:
        data["contentMediaType"] = JSON
    return {
        "type": "object",
        "properties": {
            "event": {"type": "string"},
            "data": data,
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }


def events(
    description: str, *, json_data: bool = True, headers: Mapping[str, str] | None = None
) -> Answer:
    """A Server-Sent Events stream."""
    return Answer(
        description,
        media_type=EVENTS,
        schema=event_schema(json_data=json_data),
        headers=headers or {},
    )


def streamed(
    model: type[BaseModel],
    description: str,
    *,
    json_data: bool = True,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """A JSON answer of ``model``, or (as the request asks) a Server-Sent Events stream."""
    return Answer(
        description,
        model=model,
        media_type=EVENTS,
        schema=event_schema(json_data=json_data),
        headers=headers or {},
    )


def text(media_type: str, description: str) -> Answer:
    return Answer(description, media_type=media_type, schema={"type": "string"})


def nothing(description: str) -> Answer:
    """An answer without a body (204)."""
    return Answer(description)


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query parameter or request header, with its JSON schema."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


def integer(name: str, description: str, *, low: int, high: int) -> Parameter:
    return Parameter(name, description, {"type": "integer", "minimum": low, "maximum": high})


def choice(name: str, description: str, *values: str) -> Parameter:
    return Parameter(name, description, {"type": "string", "enum": list(values)})


@dataclass(frozen=True, slots=True)
class Operation:
    """One route of the API, as ``GET /openapi.json`` describes it."""

    method: str
    path: str  # as the Starlette route has it: ``/v1/conversations/{conversation_id}``
    summary: str
    answers: Mapping[int, Answer]
    # The section of ``/docs``. It comes after ``answers`` so that each section's
    # module can bind it (and its access) once: ``partial(Operation, tag=…)``.
    tag: str
    access: Access = Access.USER
    description: str = ""
    body: type[BaseModel] | None = None  # a JSON request body of this shape
    body_required: bool = True
    example: Mapping[str, Any] | None = None  # a request body that works (docs, fuzzing)
    raw_body: Answer | None = None  # a request body that is not JSON (its media type)
    query: tuple[Parameter, ...] = ()
    headers: tuple[Parameter, ...] = ()
    error_model: type[BaseModel] = ErrorBody  # the body of its error answers
    # Statuses of errors beyond the ones its access implies (400 with a body or query).
    errors: tuple[int, ...] = ()
    error_answers: Mapping[int, Answer] = field(default_factory=dict)  # errors of another shape

    @property
    def key(self) -> tuple[str, str]:
        return self.method.upper(), self.path

    @property
    def path_parameters(self) -> list[str]:
        return _PATH_PARAMETER.findall(self.path)

    @property
    def openapi_path(self) -> str:
        """The path in OpenAPI's template syntax (Starlette's ``{name:type}`` without the type)."""
        return _PATH_PARAMETER.sub(r"{\1}", self.path)

    def error_statuses(self) -> list[int]:
        """Every error status it can answer with, in order."""
        statuses = set(self.errors)
        if self.body is not None or self.raw_body is not None or self.query or self.headers:
            statuses.add(400)
        if self.access is not Access.PUBLIC:
            statuses.add(401)
        if self.access is Access.ADMIN:
            statuses.add(403)
        if self.path.startswith("/v1/"):
            statuses.add(429)  # the per-user rate limit
        statuses.add(500)  # storage unavailable (retry), or a bug
        return sorted(statuses - set(self.answers))
