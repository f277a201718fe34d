"""A WebSocket client for end-to-end tests, on Parley's own client (``parley.client``).

The tests drive the protocol frame by frame and check every frame, so this
works on :class:`parley.client.Connection` (one socket, frames as the server
wrote them); the reconnecting :class:`parley.client.ParleyClient` is tested
on its own (tests/test_python_client.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

from parley.client import Connection

Frame = dict[str, Any]
RECEIVE_TIMEOUT_SECONDS = 20
# Frames about the conversation rather than a reply (docs/protocol.md): they
# can arrive between a reply's frames, e.g. the handoff state after a reconnect.
CONVERSATION_FRAMES = frozenset({"handoff", "title"})


@dataclass
class Reply:
    reply_id: str
    deltas: list[Frame] = field(default_factory=list)
    notices: list[Frame] = field(default_factory=list)
    errors: list[Frame] = field(default_factory=list)
    tool_frames: list[Frame] = field(default_factory=list)  # tool_call and tool_result
    numbered: list[Frame] = field(default_factory=list)  # deltas, tool and sources frames
    sources: Frame | None = None  # the ``sources`` frame of a reply given knowledge passages
    done: Frame | None = None

    @property
    def text(self) -> str:
        return "".join(frame["text"] for frame in self.deltas)

    @property
    def seqs(self) -> list[int]:
        """The seq of every numbered frame (deltas and tool steps share one numbering)."""
        return [frame["seq"] for frame in self.numbered]

    @property
    def tool_results(self) -> list[Frame]:
        return [frame for frame in self.tool_frames if frame["type"] == "tool_result"]


class ChatClient:
    def __init__(self, connection: ClientConnection | Connection) -> None:
        self.parley = connection if isinstance(connection, Connection) else Connection(connection)
        self.conversation_frames: list[Frame] = []

    @property
    def connection(self) -> ClientConnection:
        """The WebSocket itself, to send what a well-behaved client would not."""
        return self.parley.websocket

    @classmethod
    async def connect(cls, url: str, token: str | None, *, origin: str | None = None) -> ChatClient:
        return cls(await Connection.open(url, token, origin=origin, max_size=None))

    async def send(self, frame: Frame) -> None:
        await self.parley.send(frame)

    async def receive(self) -> Frame:
        return await asyncio.wait_for(self.parley.receive_json(), RECEIVE_TIMEOUT_SECONDS)

    async def expect(self, kind: str) -> Frame:
        frame = await self.receive()
        assert frame["type"] == kind, frame
        return frame

    async def start(self, **target: Any) -> Frame:
        await self.send({"type": "start", **target})
        return await self.expect("session")

    async def say(self, text: str, client_id: str | None = None) -> Frame:
        """Send a message and return its ``accepted`` frame."""
        await self.send(
            {"type": "message", "client_id": client_id or str(uuid.uuid4()), "text": text}
        )
        return await self.expect("accepted")

    async def reply(
        self,
        reply_id: str,
        *,
        until_seq: int | None = None,
        until: Callable[[Frame], bool] | None = None,
    ) -> Reply:
        """Read the reply's frames until ``done``, numbered frame ``until_seq``, or a
        frame for which ``until`` is true."""
        reply = Reply(reply_id)
        while True:
            frame = await self.receive()
            if frame["type"] in CONVERSATION_FRAMES:  # may come at any time; not the reply's
                self.conversation_frames.append(frame)
                continue
            assert frame.get("reply_id") == reply_id, frame
            kind = frame["type"]
            if kind in ("delta", "tool_call", "tool_result"):
                reply.numbered.append(frame)
                (reply.deltas if kind == "delta" else reply.tool_frames).append(frame)
                if until_seq is not None and frame["seq"] >= until_seq:
                    return reply
                if until is not None and until(frame):
                    return reply
            elif kind == "sources":
                reply.sources = frame
                reply.numbered.append(frame)
            elif kind == "notice":
                reply.notices.append(frame)
            elif kind == "error":
                reply.errors.append(frame)
            elif kind == "done":
                reply.done = frame
                return reply
            else:
                raise AssertionError(f"unexpected frame {frame}")

    async def confirm(self, reply_id: str, call_id: str, *, approve: bool) -> None:
        await self.send(
            {"type": "confirm", "reply_id": reply_id, "call_id": call_id, "approve": approve}
        )

    async def ask(self, text: str) -> Reply:
        accepted = await self.say(text)
        return await self.reply(accepted["reply_id"])

    async def close(self) -> None:
        await self.parley.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_and_ask(url: str, token: str | None, agent: str, text: str) -> tuple[Frame, Reply]:
    """Connect, start a conversation with ``agent``, ask ``text`` and hang up.

    Returns the ``session`` frame and the reply.
    """
    async with await ChatClient.connect(url, token) as client:
        session = await client.start(agent=agent)
        return session, await client.ask(text)


async def ask_once(url: str, token: str | None, agent: str, text: str) -> Reply:
    """The reply of :func:`start_and_ask`, for tests that need no more."""
    _, reply = await start_and_ask(url, token, agent, text)
    return reply
