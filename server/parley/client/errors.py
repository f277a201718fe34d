"""The one exception of the client."""

from __future__ import annotations

from parley.protocol import ErrorFrame


class ParleyError(Exception):
    """A refusal from the server (``code`` and ``frame`` from its ``error`` frame),
    or the client giving up: code ``closed`` (closed, or the connection could
    not be kept), ``unauthorized`` (the server refused the token) or
    ``superseded`` (another ``start`` replaced the session).
    """

    def __init__(self, code: str, message: str, frame: ErrorFrame | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.frame = frame

    @classmethod
    def of(cls, frame: ErrorFrame) -> ParleyError:
        return cls(frame.code, frame.message, frame)
