"""The Redis client every Parley process uses (parley/storage/redis.py), on the real Redis."""

from __future__ import annotations

from redis.asyncio import Redis

import parley
from parley.storage.redis import DRIVER, connect
from support.storage import StorageURLs


async def test_every_connection_names_parley_with_one_shared_identity(
    storage: StorageURLs,
) -> None:
    # Shared, redis-py does not rebuild it (reading package metadata) for each new
    # connection; what CLIENT SETINFO sends names Parley beside redis-py.
    client = connect(storage.redis_url)
    assert isinstance(client, Redis)
    pool = client.connection_pool
    connections = [await pool.get_connection() for _ in range(3)]
    try:
        assert len({id(connection) for connection in connections}) == 3  # three new ones
        assert all(connection.driver_info is DRIVER for connection in connections)
        for connection in connections:  # each connected, SETINFO sent, and serving
            await connection.send_command("PING")
            assert await connection.read_response() == b"PONG"
    finally:
        for connection in connections:
            await pool.release(connection)
        await client.aclose()
    assert DRIVER.formatted_name == f"redis-py(parley_v{parley.__version__})"
