"""Real Postgres and Redis for tests.

``DATABASE_URL`` / ``REDIS_URL`` are used when set (CI sets them to the
machine's servers); otherwise the embedded servers start, so the suite also
passes on a fresh machine. Each test run gets a database of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@dataclass(frozen=True)
class StorageURLs:
    database_url: str
    redis_url: str


@contextmanager
def storage_urls() -> Iterator[StorageURLs]:
    with ExitStack() as stack:
        base_db = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        if base_db is None or redis_url is None:
            from parley.storage.embedded import embedded_storage

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            embedded = stack.enter_context(
                embedded_storage(
                    folder, need_postgres=base_db is None, need_redis=redis_url is None
                )
            )
            base_db = base_db or embedded.database_url
            redis_url = redis_url or embedded.redis_url
        assert base_db is not None and redis_url is not None
        name = f"parley_test_{secrets.token_hex(4)}"
        asyncio.run(_admin(base_db, f'CREATE DATABASE "{name}"'))
        stack.callback(lambda: asyncio.run(_admin(base_db, f'DROP DATABASE "{name}" WITH (FORCE)')))
        yield StorageURLs(_with_database(base_db, name), redis_url)


async def _admin(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))
