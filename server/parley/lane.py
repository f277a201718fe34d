"""Lanes: how much of one kind of work a process runs at once, the rest queued.

Everything a process does shares one event loop with the replies it is
streaming, and a running reply needs the loop every few milliseconds. Two
kinds of work arrive in waves that would take it away for longer:

* **Accepting messages** (rules, opening the reply, the history, the knowledge
  search, the prompt, the turn's insert) costs about as much CPU as relaying a
  few dozen tokens. When dozens of messages (or new chats) arrive together,
  their steps fill every turn of the loop and the replies already running
  stall. :class:`parley.chat.ChatService` takes a slot of a lane of
  ``PARLEY_ACCEPT_CONCURRENCY`` (4) for each: a burst's later messages start
  a little later, and the running replies keep their pace (measured in
  docs/performance.md).
* **Titles** of new conversations, one upstream call each after a first
  reply: worth doing, not at any price. They run two at a time, and past a
  backlog they are skipped (parley/titles.py).

Waiting for a slot costs nothing, and slots are given in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Lane:
    """At most ``concurrency`` holders of a slot at once (``0``: no limit).

    With a ``backlog``, :meth:`has_room` says whether one more may queue, so
    work that can be dropped is dropped rather than queued without bound.
    """

    def __init__(self, concurrency: int, *, backlog: int | None = None) -> None:
        self._slots = asyncio.Semaphore(concurrency) if concurrency > 0 else None
        self._backlog = backlog
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many wait for a slot right now."""
        return self._waiting

    def has_room(self) -> bool:
        return self._backlog is None or self._waiting < self._backlog

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            yield
            return
        self._waiting += 1
        try:
            await self._slots.acquire()  # FIFO: asyncio.Semaphore wakes waiters in order
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()
