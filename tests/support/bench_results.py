"""A saved bench run (what ``bench.json`` and ``--from-json`` hold), for report tests."""

from __future__ import annotations

from typing import Any

# The run's description every report starts with: one source tree, unpinned.
META: dict[str, Any] = {
    "sources": [{"label": "src", "describe": "a tree"}],
    "date": "today",
    "command": "python -m bench",
    "seconds": 1.0,
    "machine": "test",
    "pinning": "none",
    "commit": "0" * 40,
}


def saved_run(**phases: Any) -> dict[str, Any]:
    """A run's results with these phases' entries (``ladders`` empty unless given)."""
    return {"meta": dict(META), "ladders": [], **phases}
