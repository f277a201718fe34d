"""What ``parley serve`` sets up for metrics before uvicorn starts its workers.

With several workers, each is a process of its own. prometheus-client's
multiprocess mode has them write their metrics to files in one directory
(``PROMETHEUS_MULTIPROC_DIR``, read by prometheus-client when it is first
imported, so it must be in the environment before the workers start). Each
``parley serve`` gets a fresh directory of its own under
``PARLEY_DATA_DIR/metrics/``: several servers may share a data directory,
and files left from an earlier run would add its counts to this one's.

A directory stays locked (``flock``) for as long as its server runs, and is
removed when it stops; a server that was killed leaves it behind, unlocked,
for the next ``parley serve`` to remove at start.

With one worker the metrics stay in memory and no directory is made.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from parley.observability.exposition import MULTIPROC_ENV
from parley.observability.metrics_server import MetricsServer

METRICS_FOLDER = "metrics"
LOCK_FILE = ".lock"
DIRECTORY_PREFIX = "serve-"


class MetricsPortUnavailable(RuntimeError):
    """The metrics port cannot be listened on; the message is one line for the operator."""


@contextlib.contextmanager
def metrics_for_serve(
    *,
    data_dir: Path,
    workers: int,
    host: str,
    port: int | None,
    token: str | None,
    serving_port: int,
) -> Iterator[None]:
    """The workers' metrics directory (with several workers) and the metrics port
    (if ``port`` is set), for the block's duration."""
    if port == serving_port:
        raise MetricsPortUnavailable(
            f"PARLEY_METRICS_PORT: {port} is the port Parley serves on; choose another"
        )
    with contextlib.ExitStack() as stack:
        if workers > 1:
            directory = stack.enter_context(worker_metrics_directory(data_dir))
            os.environ[MULTIPROC_ENV] = str(directory)
            stack.callback(os.environ.pop, MULTIPROC_ENV, None)
        if port is not None:
            try:
                server = MetricsServer(host, port, token=token)
            except OSError as error:
                raise MetricsPortUnavailable(
                    f"PARLEY_METRICS_PORT: cannot listen on {host}:{port}: "
                    f"{error.strerror or error}"
                ) from None
            stack.callback(server.start().stop)
        yield


@contextlib.contextmanager
def worker_metrics_directory(data_dir: Path) -> Iterator[Path]:
    """A new, empty, locked directory for this server's metric files; removed on exit.

    Directories of servers that are no longer running are removed first.
    """
    root = data_dir / METRICS_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_directories(root)
    # Made and locked under a name the clean-up ignores, then renamed: another
    # server starting meanwhile never sees it unlocked.
    building = Path(tempfile.mkdtemp(prefix=".new-", dir=root))
    lock = os.open(building / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        directory = root / f"{DIRECTORY_PREFIX}{building.name.removeprefix('.new-')}"
        building.rename(directory)
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    finally:
        os.close(lock)
        shutil.rmtree(building, ignore_errors=True)  # only if the rename never happened


def remove_stale_directories(root: Path) -> list[Path]:
    """Remove the metric directories no running server holds; returns them."""
    removed = []
    for directory in root.glob(f"{DIRECTORY_PREFIX}*"):
        try:
            lock = os.open(directory / LOCK_FILE, os.O_RDWR)
        except FileNotFoundError:  # removed by its server meanwhile
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its server is running
        else:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
        finally:
            os.close(lock)
    return removed
