"""The ids a log line is about: request, user, conversation and reply.

They live in a context variable, so each asyncio task sees its own: uvicorn
runs every HTTP request and WebSocket connection in a task of its own, and a
reply task starts with a copy of the ids of the request that accepted its
message. Code binds an id where it learns it; the log formatters read them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ids: ContextVar[Mapping[str, str]] = ContextVar("parley_log_ids", default=_EMPTY)


def bind(
    *,
    request_id: str | None = None,
    user_id: str | None = None,
    conversation_id: str | None = None,
    reply_id: str | None = None,
) -> None:
    """Add ids for the rest of the current task (and the tasks it starts from now on)."""
    _ids.set(_with(request_id, user_id, conversation_id, reply_id))


@contextlib.contextmanager
def bound(
    *,
    request_id: str | None = None,
    user_id: str | None = None,
    conversation_id: str | None = None,
    reply_id: str | None = None,
) -> Iterator[None]:
    """Add ids for the block only."""
    token = _ids.set(_with(request_id, user_id, conversation_id, reply_id))
    try:
        yield
    finally:
        _ids.reset(token)


def current() -> Mapping[str, str]:
    return _ids.get()


def _with(
    request_id: str | None, user_id: str | None, conversation_id: str | None, reply_id: str | None
) -> Mapping[str, str]:
    ids = dict(_ids.get())
    given = {
        "request_id": request_id,
        "user_id": user_id,
        "conversation_id": conversation_id,
        "reply_id": reply_id,
    }
    ids.update({name: value for name, value in given.items() if value is not None})
    return MappingProxyType(ids)
