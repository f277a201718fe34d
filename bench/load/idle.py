"""Authenticated WebSockets that stay open and silent: what an idle socket costs Parley."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.load.tally import StreamError, describe
from bench.load.turns import OPEN_CONCURRENCY, Command, bearer
from bench.load.ws import ws_connect

CLOSE_CONCURRENCY = 256  # sockets closed at once


class IdleSockets:
    def __init__(self) -> None:
        self.open_: list[ClientConnection] = []

    async def add(self, command: Command) -> dict[str, Any]:
        """``count`` more sockets, each proven served by one ``ping``."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        base = len(self.open_)
        deflate = bool(command.get("deflate", True))

        async def one(index: int) -> ClientConnection:
            token = bearer(command, f"{command['users']}.{index}")
            async with gate:
                connection = await ws_connect(command["url"], token, deflate, ping_interval=None)
                await connection.send('{"type":"ping"}')
                reply = json.loads(await connection.recv())
                if reply.get("type") != "pong":
                    await connection.close()
                    raise StreamError(f"no pong: {reply}")
                return connection

        count = int(command["count"])
        opened = await asyncio.gather(
            *(one(base + i) for i in range(count)), return_exceptions=True
        )
        errors = [describe(e) for e in opened if isinstance(e, BaseException)]
        self.open_ += [c for c in opened if not isinstance(c, BaseException)]
        return {"open": len(self.open_), "errors": len(errors), "error_samples": errors[:5]}

    async def close(self) -> dict[str, Any]:
        idle, self.open_ = self.open_, []
        gate = asyncio.Semaphore(CLOSE_CONCURRENCY)

        async def one(connection: ClientConnection) -> None:
            async with gate:
                await connection.close()

        await asyncio.gather(*(one(c) for c in idle), return_exceptions=True)
        return {"closed": len(idle)}
