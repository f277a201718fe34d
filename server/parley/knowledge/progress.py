"""A progress bar for long ingestion runs: on stderr, and only on a terminal.

Logs and pipes get the summary lines alone; a bar's carriage returns would
only garble them.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
SHOW_AFTER_SECONDS = 0.5  # short runs finish before a bar is worth drawing
REDRAW_SECONDS = 0.1


class ProgressBar:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() and total > 0
        self._label = label
        self._total = total
        self._done = 0
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._drawn = False

    def advance(self, step: int = 1, *, note: str = "") -> None:
        self._done = min(self._total, self._done + step)
        if not self._enabled:
            return
        now = time.monotonic()
        late = now - self._started >= SHOW_AFTER_SECONDS
        if late and (now - self._drawn_at >= REDRAW_SECONDS or self._done == self._total):
            self._draw(note)
            self._drawn_at = now

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, note: str) -> None:
        filled = WIDTH * self._done // self._total
        bar = "#" * filled + "-" * (WIDTH - filled)
        line = f"\r{self._label} [{bar}] {self._done}/{self._total} {note[:40]}"
        self._stream.write(line.ljust(100))
        self._stream.flush()
        self._drawn = True
