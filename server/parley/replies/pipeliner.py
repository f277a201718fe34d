"""One Redis round trip for everything the instance's replies want to write.

Reply tasks hand their commands to :class:`Pipeliner`; while one pipeline
is on the wire, new commands queue up, and all of them go out together in
the next. At one stream this costs nothing (the queue is empty, the write
leaves at once); at hundreds of streams it turns hundreds of round trips
into one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

Commands = Callable[[Pipeline], None]


class Pipeliner:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queue: list[tuple[Commands, asyncio.Future[list[Any]]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def execute(self, commands: Commands) -> list[Any]:
        """Run ``commands`` (in order, with the others queued) and return their results."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch)
        finally:
            self._flushing = None

    async def _send(self, batch: list[tuple[Commands, asyncio.Future[list[Any]]]]) -> None:
        sizes = []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for commands, _ in batch:
                    before = len(pipe)
                    commands(pipe)
                    sizes.append(len(pipe) - before)
                results = await pipe.execute()
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for (_, future), size in zip(batch, sizes, strict=True):
            if not future.done():
                future.set_result(results[start : start + size])
            start += size
