"""What ``parley check`` and ``parley serve`` verify before anything starts.

Settings are checked for their form when they are read (:mod:`parley.config`);
these checks need the world outside: that the configured Postgres and Redis
answer, and that the address to listen on is free. Each failure is one line
naming the variable or address, never a traceback.
"""

from __future__ import annotations

import asyncio
import socket

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from parley.config import Settings
from parley.storage.redis import RedisClient, cluster_client, is_cluster_url

PROBE_TIMEOUT_SECONDS = 5.0


async def storage_problems(settings: Settings) -> list[str]:
    """One line for each configured storage server that does not answer.

    Unset URLs mean embedded servers, which ``serve`` starts itself.
    """
    probes = []
    if settings.database_url is not None:
        probes.append(database_problem(settings.database_url))
    if settings.redis_url is not None:
        probes.append(redis_problem(settings.redis_url))
    return [problem for problem in await asyncio.gather(*probes) if problem is not None]


async def database_problem(url: str) -> str | None:
    """Why Postgres at ``url`` cannot be used, if it cannot."""
    try:
        connection = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_SECONDS)
    # Whatever the failure (refused, timed out, refused login, malformed URL),
    # the answer is the same: this setting does not work. Say why, on one line.
    except Exception as error:
        return f"DATABASE_URL: cannot connect ({_reason(error)})"
    await connection.close()
    return None


async def redis_problem(url: str) -> str | None:
    """Why Redis at ``url`` cannot be used, if it cannot."""
    client: RedisClient
    try:
        if is_cluster_url(url):
            client = cluster_client(
                url,
                socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
                socket_timeout=PROBE_TIMEOUT_SECONDS,
            )
        else:
            client = Redis.from_url(
                url,
                socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
                socket_timeout=PROBE_TIMEOUT_SECONDS,
            )
    except Exception as error:  # a URL redis cannot parse
        return f"REDIS_URL: {_reason(error)}"
    try:
        if isinstance(client, RedisCluster):  # every node must answer, one at a time
            await client.initialize()
            for node in client.get_nodes():
                await client.ping(target_nodes=node)
        else:
            await client.ping()
    except Exception as error:  # as for Postgres: any failure means the setting does not work
        return f"REDIS_URL: cannot connect ({_reason(error)})"
    finally:
        await client.aclose()
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, if it cannot.

    Checked before the start-up banner and before embedded servers are
    touched, so a second ``parley serve`` on a taken port changes nothing.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
