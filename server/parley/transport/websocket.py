"""The chat WebSocket at ``GET /ws``.

A connection authenticates once at the handshake, then reads frames while
forwarding reply frames from the reply log. Reply frames come only from the
log, never straight from generation, so what one socket sees is exactly
what a resuming socket on another instance sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.auth.http import authenticate, origin_allowed
from parley.auth.tokens import Principal
from parley.chat import SessionView
from parley.errors import BadRequest, ParleyError, RateLimited, TooLarge
from parley.services import Services
from parley.transport.failures import client_error
from parley.transport.frames import (
    CancelFrame,
    ClientFrame,
    MessageFrame,
    PingFrame,
    ResumeFrame,
    StartFrame,
    error_frame,
    parse_client_frame,
)
from parley.transport.ratelimit import TokenBucket

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009


async def websocket_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    settings = services.settings
    if not origin_allowed(
        websocket.headers.get("origin"),
        host_header=websocket.headers.get("host"),
        allowed=settings.allowed_origins,
    ):
        log.info("websocket refused: origin %r not allowed", websocket.headers.get("origin"))
        await _refuse(websocket, "origin not allowed")
        return
    try:
        user = await authenticate(
            websocket, services.verifier, allowed_origins=settings.allowed_origins
        )
    except ParleyError as error:
        log.info("websocket refused: %s", error.message)
        await _refuse(websocket, error.message)
        return
    await websocket.accept()
    await ChatConnection(websocket, services, user).serve()


async def _refuse(websocket: WebSocket, reason: str) -> None:
    """Close with 1008 before any frame is exchanged."""
    await websocket.accept()
    await websocket.close(code=POLICY_VIOLATION, reason=reason[:120])


class ChatConnection:
    def __init__(self, websocket: WebSocket, services: Services, user: Principal) -> None:
        self.websocket = websocket
        self.services = services
        self.user = user
        self.view: SessionView | None = None
        self.followers: dict[str, asyncio.Task[None]] = {}
        self.bucket = TokenBucket(
            services.settings.ws_frames_per_second, services.settings.ws_frame_burst
        )
        self._send_lock = asyncio.Lock()

    async def serve(self) -> None:
        try:
            while True:
                raw = await self._receive()
                if raw is None:
                    return
                await self._handle(raw)
        finally:
            for task in self.followers.values():
                task.cancel()

    async def _receive(self) -> str | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            await self.send(error_frame(BadRequest("Binary frames are not supported.")))
            return ""
        if len(text.encode()) > self.services.settings.max_frame_bytes:
            await self.websocket.close(code=MESSAGE_TOO_BIG, reason="frame too large")
            return None
        return str(text)

    async def _handle(self, raw: str) -> None:
        if not raw:
            return
        client_id = None
        try:
            if not self.bucket.take():
                raise RateLimited("Too many frames; slow down.")
            frame = parse_client_frame(raw)
            client_id = frame.client_id if isinstance(frame, MessageFrame) else None
            await self._dispatch(frame)
        except Exception as error:
            await self.send(error_frame(client_error(error, context="ws frame"), client_id))

    async def _dispatch(self, frame: ClientFrame) -> None:
        match frame:
            case PingFrame():
                await self.send({"type": "pong"})
            case StartFrame():
                await self._start(frame)
            case MessageFrame():
                await self._message(frame)
            case CancelFrame():
                await self.services.replies.cancel(frame.reply_id, self.user.user_id)
            case ResumeFrame():
                self._follow(frame.reply_id, frame.after_seq, restart=True)

    async def _start(self, frame: StartFrame) -> None:
        self.view = await self.services.chat.start(
            self.user,
            agent_id=frame.agent,
            conversation_id=frame.conversation_id,
            session_id=frame.session_id,
            personality=frame.personality,
            rules=frame.rules,
        )
        await self.send(self.view.frame())

    async def _message(self, frame: MessageFrame) -> None:
        if self.view is None:
            raise BadRequest('Send a "start" frame first.')
        if len(frame.text) > self.services.settings.max_message_chars:
            raise TooLarge(
                f"Messages are limited to {self.services.settings.max_message_chars} characters."
            )
        accepted = await self.services.chat.send(
            self.user, self.view.conversation, client_id=frame.client_id, text=frame.text
        )
        await self.send(accepted.frame())
        self._follow(accepted.reply_id, 0, restart=False)

    def _follow(self, reply_id: str, after_seq: int, *, restart: bool) -> None:
        running = self.followers.get(reply_id)
        if running is not None and not running.done():
            if not restart:
                return
            running.cancel()
        self.followers[reply_id] = asyncio.create_task(self._forward(reply_id, after_seq))

    async def _forward(self, reply_id: str, after_seq: int) -> None:
        try:
            async for event in self.services.replies.follow(reply_id, self.user.user_id, after_seq):
                await self.send_encoded(event.json)
        except (WebSocketDisconnect, asyncio.CancelledError):
            raise
        except Exception as error:
            with contextlib.suppress(Exception):
                await self.send(error_frame(client_error(error, context="ws follow")))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_encoded(json.dumps(frame, separators=(",", ":")))

    async def send_encoded(self, text: str) -> None:
        async with self._send_lock:
            await self.websocket.send_text(text)
