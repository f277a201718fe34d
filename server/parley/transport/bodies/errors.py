"""Parley's error body, the one every error of its own endpoints has."""

from __future__ import annotations

from pydantic import Field

from parley.errors import ErrorCode, ParleyError
from parley.transport.bodies.base import Closed


class ErrorDetail(Closed):
    code: ErrorCode = Field(description="Stable error code (docs/protocol.md).")
    message: str = Field(description="Readable explanation; may change between versions.")


class ErrorBody(Closed):
    """Every error of Parley's own endpoints: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, error: ParleyError) -> ErrorBody:
        return cls(error=ErrorDetail(code=error.code, message=error.message))
