"""The text a scrape of ``/metrics`` gets, and who may have it.

With one process the metrics are read from memory. Under
``parley serve --workers N`` every worker writes its metrics to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up by
:mod:`parley.observability.workers`), and a scrape, whichever process answers
it, adds up all the files: no worker's counters hide another's, and counts
of workers that died stay counted. Gauges of processes that are gone are
removed first, so ``parley_active_replies`` only counts live workers.
"""

from __future__ import annotations

import contextlib
import hmac
import os
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always, when no token is set).

    Compared in constant time, so the answer's timing does not tell how much
    of a guess was right.
    """
    if token is None:
        return True
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def render(accept: str | None) -> tuple[bytes, str]:
    """The metrics in the format ``accept`` asks for (Prometheus text by default),
    and its content type. Reads files under multiprocess mode: call it off the event loop."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(_registry()), content_type


def _registry() -> CollectorRegistry:
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        from parley.observability.metrics import REGISTRY

        return REGISTRY
    forget_dead_processes(Path(directory))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def forget_dead_processes(directory: Path) -> None:
    """Drop the live gauges of processes that no longer run (a worker that crashed
    or was restarted never does it itself)."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _running(int(pid)):
            # Another worker answering a scrape at the same time may get there first.
            with contextlib.suppress(FileNotFoundError):
                mark_process_dead(int(pid), str(directory))  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True
