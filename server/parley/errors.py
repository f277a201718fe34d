"""Typed errors and the one place they map to client-facing codes.

Every failure a client can see is a :class:`ParleyError` subclass. Transports
(WebSocket frames, REST JSON bodies, SSE events) render them through
:func:`error_body` and :data:`HTTP_STATUS`, so a code means the same thing
everywhere. The codes are documented in ``docs/protocol.md``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from parley.protocol import ErrorFrame


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_AGENT = "unknown_agent"
    BUSY = "busy"
    BUDGET_EXCEEDED = "budget_exceeded"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    CONFLICT = "conflict"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNKNOWN_AGENT: 404,
    ErrorCode.BUSY: 409,
    ErrorCode.BUDGET_EXCEEDED: 429,
    ErrorCode.UPSTREAM_UNAVAILABLE: 503,
    ErrorCode.CONFLICT: 422,
    ErrorCode.INTERNAL: 500,
}


class ParleyError(Exception):
    """An error a client is allowed to see: a stable code and a readable message."""

    code: ErrorCode = ErrorCode.INTERNAL
    default_message = "Internal error."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


class BadRequest(ParleyError):
    code = ErrorCode.BAD_REQUEST
    default_message = "The request is malformed."


class Unauthorized(ParleyError):
    code = ErrorCode.UNAUTHORIZED
    default_message = "Authentication is required."


class Forbidden(ParleyError):
    code = ErrorCode.FORBIDDEN
    default_message = "You are not allowed to do that."


class NotFound(ParleyError):
    code = ErrorCode.NOT_FOUND
    default_message = "Not found."


class TooLarge(ParleyError):
    code = ErrorCode.TOO_LARGE
    default_message = "The message is too large."


class RateLimited(ParleyError):
    code = ErrorCode.RATE_LIMITED
    default_message = "Too many requests; slow down."


class UnknownAgent(ParleyError):
    code = ErrorCode.UNKNOWN_AGENT
    default_message = "No such agent."


class Busy(ParleyError):
    code = ErrorCode.BUSY
    default_message = "A reply is still running in this conversation."


class BudgetExceeded(ParleyError):
    code = ErrorCode.BUDGET_EXCEEDED
    default_message = "Your token budget for today is used up."


class UpstreamUnavailable(ParleyError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE
    default_message = "The language model is unavailable; try again shortly."


class Conflict(ParleyError):
    code = ErrorCode.CONFLICT
    default_message = "That idempotency key was already used with a different request."


class Internal(ParleyError):
    code = ErrorCode.INTERNAL


def error_body(error: ParleyError, **extra: Any) -> dict[str, Any]:
    """The ``{"code", "message"}`` object shared by every transport."""
    return {"code": error.code.value, "message": error.message, **extra}


def error_frame(
    error: ParleyError,
    *,
    reply_id: str | None = None,
    client_id: str | None = None,
    call_id: str | None = None,
    message_id: str | None = None,
    request: str | None = None,
) -> ErrorFrame:
    """The ``error`` frame of ``error``, naming the request or reply it is about."""
    return ErrorFrame(
        reply_id=reply_id,
        code=error.code.value,
        message=error.message,
        client_id=client_id,
        call_id=call_id,
        message_id=message_id,
        request=request,
    )
