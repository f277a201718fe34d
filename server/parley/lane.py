"""A lane for background work that may wait its turn, and may be dropped.

Some work a reply leaves behind (a conversation's title) is worth doing but
not now at any price: a wave of first replies ending together would otherwise
start as many upstream calls at once, on the same event loop that feeds the
replies still streaming, and a long enough wave would queue without bound.
A :class:`Lane` runs a few such jobs at once, queues the rest in arrival
order, and says when its queue is full so the caller can skip the job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Lane:
    """At most ``concurrency`` jobs at once; :meth:`has_room` while fewer than
    ``backlog`` wait."""

    def __init__(self, concurrency: int, backlog: int) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._backlog = backlog
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Jobs queued for a slot right now."""
        return self._waiting

    def has_room(self) -> bool:
        return self._waiting < self._backlog

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self._waiting += 1
        try:
            await self._slots.acquire()  # FIFO: asyncio.Semaphore wakes waiters in order
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()
