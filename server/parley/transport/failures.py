"""Turning unexpected failures into typed client errors, with a log line.

A :class:`ParleyError` passes through as it is. Storage outages become an
``internal`` error that says nothing was saved, so the client retries with
the same ``client_id`` and loses nothing. Anything else is logged with its
traceback and reported as a plain ``internal`` error.
"""

from __future__ import annotations

import logging

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parley.errors import Internal, ParleyError
from parley.observability import metrics

log = logging.getLogger("parley.errors")

STORAGE_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    RedisConnectionError,
    RedisTimeoutError,
)


def client_error(error: BaseException, *, context: str) -> ParleyError:
    if isinstance(error, ParleyError):
        log.info("%s: %s (%s)", context, error.code.value, error.message)
        return error
    if isinstance(error, STORAGE_ERRORS):
        log.error("%s: storage unavailable: %s", context, error)
        metrics.storage_error(metrics.backend_of(error) or "unknown", "request")
        return Internal(
            "Storage is unavailable, so nothing was saved; retry with the same client_id."
        )
    log.exception("%s: unexpected error", context, exc_info=error)
    return Internal()
