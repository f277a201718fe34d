"""A reply's upstream events with the request already sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from parley.llm.router import RouterEvent


class Prefetched:
    """The reply's upstream events, the first of them already on its way.

    Creating it sends the request to the model (in a task of its own), so the
    vendor works while the caller is still storing the turn.
    """

    def __init__(self, events: AsyncGenerator[RouterEvent, None]) -> None:
        self._events = events
        self._first: asyncio.Task[RouterEvent | None] | None = asyncio.create_task(_first(events))

    def __aiter__(self) -> Prefetched:
        return self

    async def __anext__(self) -> RouterEvent:
        if self._first is None:
            return await anext(self._events)
        first, self._first = self._first, None
        event = await first
        if event is None:
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        if self._first is not None:
            self._first.cancel()
            await asyncio.wait({self._first})
            if not self._first.cancelled():
                self._first.exception()  # retrieved: asyncio must not log it as forgotten
            self._first = None
        await self._events.aclose()


async def _first(events: AsyncGenerator[RouterEvent, None]) -> RouterEvent | None:
    return await anext(events, None)
