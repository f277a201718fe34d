"""The Postgres pool and the migration runner.

Migrations are plain numbered ``.sql`` files applied in order inside one
transaction each, recorded in ``schema_migrations``. An advisory lock makes
concurrent ``parley serve`` start-ups safe: one applies, the others wait.
"""

from __future__ import annotations

import json
import logging
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# An arbitrary constant shared by every Parley instance.
MIGRATION_LOCK = 0x5041524C


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset_connection
    )
    assert pool is not None
    return pool


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


async def _reset_connection(connection: asyncpg.Connection) -> None:
    """Ready a connection for its next user.

    asyncpg's default sends ``RESET ALL``, ``UNLISTEN``, ``CLOSE ALL`` and an
    advisory unlock on every release: a round trip for state Parley never
    leaves behind (it uses no listeners or cursors, and releases its one
    advisory lock itself). Only a transaction left open by a cancelled query
    is possible, and that is rolled back.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def migration_files() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every bundled migration, in order."""
    folder = resources.files("parley.storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    applied: list[str] = []
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = await connection.fetch("SELECT version FROM schema_migrations")
            done = {row["version"] for row in rows}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                async with connection.transaction():
                    await connection.execute(sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            try:
                await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
            except BaseException:
                # Pooled connections are not reset with pg_advisory_unlock_all
                # (see _reset_connection): one still holding the lock must go.
                connection.terminate()
                raise
    return applied
