"""Parley's WebSocket protocol: ``start``, then ``message`` -> ``accepted``, ``delta``…,
``done``, each message timed from the moment it is sent."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import PROMPT, StreamResult, TokenClock
from bench.load.tally import ParleyTally, StreamError, on_parley_frame, parley_result


async def ws_connect(url: str, token: str, deflate: bool, **options: Any) -> ClientConnection:
    """An authenticated socket; ``deflate`` offers permessage-deflate, as browsers do."""
    headers = {"Authorization": f"Bearer {token}"}
    compression = "deflate" if deflate else None
    return await connect(url, additional_headers=headers, compression=compression, **options)


class WsTurn:
    """One authenticated socket. ``ws`` opens a conversation (``start``) before each
    timed message, untimed; ``ws-new`` times ``start`` and the message together."""

    def __init__(self, connection: ClientConnection, agent: str, timed_start: bool) -> None:
        self.connection = connection
        self.agent = agent
        self.timed_start = timed_start
        self.fresh = False  # a conversation is open and has had no message yet
        self.renew = True  # False: later messages continue the same conversation

    @classmethod
    async def open(
        cls, url: str, token: str, agent: str, deflate: bool, timed_start: bool = False
    ) -> WsTurn:
        connection = await ws_connect(url, token, deflate, max_size=None)
        turn = cls(connection, agent, timed_start)
        if not timed_start:
            try:
                await turn.start()
            except BaseException:
                await turn.close()
                raise
        return turn

    async def start(self) -> None:
        """A new conversation; frames of the previous one still on their way are skipped."""
        await self.connection.send(json.dumps({"type": "start", "agent": self.agent}))
        while True:
            frame = json.loads(await self.connection.recv())
            if frame.get("type") == "session":
                self.fresh = True
                return
            if frame.get("type") == "error" and "reply_id" not in frame:
                raise StreamError(f"start refused: {str(frame)[:200]}")

    async def run(self, expected: list[str]) -> StreamResult:
        if not self.timed_start and not self.fresh and self.renew:
            await self.start()  # untimed: every probe is a new conversation
        clock = TokenClock(expected, time.perf_counter())
        if self.timed_start:
            await self.start()
        self.fresh = False
        frame = {"type": "message", "client_id": str(uuid.uuid4()), "text": PROMPT}
        await self.connection.send(json.dumps(frame))
        tally = ParleyTally()
        while not on_parley_frame(json.loads(await self.connection.recv()), clock, tally):
            pass
        return parley_result(clock, tally)

    async def close(self) -> None:
        await self.connection.close()
