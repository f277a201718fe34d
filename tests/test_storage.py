"""The Postgres pool's own behaviour, against a real Postgres."""

from __future__ import annotations

from parley.storage.database import create_pool
from support.storage import StorageURLs


async def test_a_connection_released_inside_a_transaction_comes_back_clean(
    storage: StorageURLs,
) -> None:
    pool = await create_pool(storage.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            await connection.execute("BEGIN")  # e.g. a query cancelled mid-transaction
            await connection.execute("SELECT 1")
        async with pool.acquire() as connection:  # the same one: the pool holds one
            assert not connection.is_in_transaction()
            assert await connection.fetchval("SELECT 2") == 2
    finally:
        await pool.close()
