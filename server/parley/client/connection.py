"""One WebSocket to Parley's ``GET /ws``: JSON frames out, frames in, nothing more.

:class:`parley.client.ParleyClient` adds sessions, replies and resume on top;
this layer is for callers that drive the protocol frame by frame (the
end-to-end tests do).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from parley.protocol import ServerFrame, parse_frame

Frame = dict[str, Any]
DEFAULT_MAX_SIZE = 16 * 1024 * 1024  # a session frame carries the whole history


class Connection:
    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None = None,
        *,
        origin: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_size: int | None = DEFAULT_MAX_SIZE,
        open_timeout: float | None = 10,
    ) -> Connection:
        """Connect, authenticated by ``Authorization: Bearer <token>`` when a token is given.

        The server refuses a bad token (or Origin) by closing at once with
        1008, so that shows on the first receive, not here.
        """
        additional = dict(headers or {})
        if token:
            additional["Authorization"] = f"Bearer {token}"
        websocket = await connect(
            url,
            additional_headers=additional,
            origin=Origin(origin) if origin else None,
            max_size=max_size,
            open_timeout=open_timeout,
        )
        return cls(websocket)

    async def send(self, frame: Mapping[str, Any]) -> None:
        await self.websocket.send(json.dumps(frame, separators=(",", ":")))

    async def receive_json(self) -> Frame:
        """The next frame as the server wrote it; raises ``ConnectionClosed``."""
        frame: Frame = json.loads(await self.websocket.recv())
        return frame

    async def receive(self) -> ServerFrame:
        """The next frame, typed (``parley.protocol``)."""
        return parse_frame(await self.receive_json())

    @property
    def close_code(self) -> int | None:
        """The close code the server sent, once the connection is closed."""
        received = self.websocket.protocol.close_rcvd
        return received.code if received is not None else None

    async def close(self) -> None:
        await self.websocket.close()
