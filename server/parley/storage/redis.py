"""The Redis client (a single server or a Redis Cluster), and reading its replies as text."""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import unquote

from redis import __version__ as redis_py_version
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError, TimeoutError

from parley import __version__ as parley_version
from parley.storage.multiplex import MultiplexedRedis

# Either client: every key one command, script or transaction touches shares a
# hash slot (storage/keys.py), so the same code runs against both.
RedisClient: TypeAlias = Redis | RedisCluster

# How long a command waits for a pooled connection before failing.
POOL_WAIT_SECONDS = 10
# REDIS_URL schemes of a Redis Cluster (the ``limits`` library's too).
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
# Who each connection says it is (CLIENT SETINFO, in CLIENT LIST on Redis 7.2+):
# redis-py(parley_v...). One for every connection: left to itself redis-py makes
# one per connection and looks its own version up in the installed packages'
# metadata each time, 0.8 ms of the event loop per new connection, paid when
# the pool grows, which is in a burst.
DRIVER = DriverInfo(lib_version=redis_py_version).add_upstream_driver("parley", parley_version)


def connect(url: str, *, max_connections: int = 512) -> RedisClient:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` URLs, or a cluster's
    ``redis+cluster://`` or ``rediss+cluster://`` (:func:`cluster_client`).

    Commands are retried (three times, with jittered backoff up to a second)
    on connection errors, so a Redis restart or failover costs a reply a
    short pause rather than its life: pooled connections go stale when
    Redis restarts and the first command on each would otherwise fail.
    Replies stay bytes (no ``decode_responses``) and are decoded where used.

    The pool is a blocking one: when every connection is busy (each socket
    following a reply on another instance holds one in a blocking XREAD) a
    command waits for a free connection instead of failing at once.

    On one server, registered scripts skip the pool: they share one connection,
    many in flight at once (:class:`~parley.storage.multiplex.MultiplexedRedis`).
    """
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3)
    if is_cluster_url(url):
        return cluster_client(
            url,
            max_connections=max_connections,
            socket_connect_timeout=5,
            socket_timeout=None,  # as on one server: a blocking XREAD waits for seconds
            health_check_interval=30,
            retry=retry,
            driver_info=DRIVER,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=retry,
        retry_on_error=[ConnectionError, TimeoutError],
        driver_info=DRIVER,
    )
    return MultiplexedRedis(connection_pool=pool)


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """A client of the cluster whose nodes ``url`` names (one is enough: it finds the rest).

    ``max_connections`` is per node, and a node whose connections are all busy
    fails a command at once (redis-py's cluster client has no blocking pool).
    """
    seeds, credentials = cluster_seeds(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds],
        **credentials,
        **options,
    )


def cluster_seeds(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The ``host:port`` pairs of ``redis+cluster://[user:password@]host:port[,host:port…]``,
    and the connection options its user, password and scheme give.

    Raises :class:`ValueError` for anything else.
    """
    scheme, separator, rest = url.partition("://")
    if scheme not in CLUSTER_SCHEMES or not separator:
        raise ValueError("must be a redis+cluster:// or rediss+cluster:// URL")
    location = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo, _, hosts = location.rpartition("@")
    options: dict[str, Any] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    if scheme == "rediss+cluster":
        options["ssl"] = True
    seeds = []
    for seed in hosts.split(","):
        host, _, port = seed.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")  # [::1]:7000
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"names a node as {seed!r}: every node must be host:port")
        seeds.append((host, int(port)))
    return seeds, options


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
