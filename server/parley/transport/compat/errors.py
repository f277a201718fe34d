"""Errors of the compatible APIs: a Parley error, rendered in the vendor's shape.

The endpoints raise :class:`~parley.errors.ParleyError` like every other
endpoint; :func:`speaking` catches them (and anything unexpected, through
the same :func:`~parley.transport.failures.client_error` as the rest of the
server) and lets the vendor's module render them, so its SDK raises its own
typed exception.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from parley.errors import BadRequest, ErrorCode, ParleyError
from parley.transport.failures import client_error

Body = TypeVar("Body", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]
Render = Callable[[ParleyError], Response]


class InvalidParam(BadRequest):
    """A bad request about one field of the body, which the vendors' errors name."""

    def __init__(self, message: str, *, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def param_of(error: ParleyError) -> str | None:
    """The request field an error is about, if any."""
    if isinstance(error, InvalidParam):
        return error.param
    return "model" if error.code is ErrorCode.UNKNOWN_AGENT else None


async def parse(request: Request, model: type[Body]) -> Body:
    """The JSON body as ``model``, or an :class:`InvalidParam` naming the first problem."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidParam(f"{where or 'body'}: {first['msg']}", param=where or None) from None


def speaking(render: Render) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint so that every error it raises leaves through ``render``."""

    def wrap(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                return render(client_error(error, context=f"{request.method} {request.url.path}"))

        return endpoint

    return wrap
