"""The chat WebSocket at ``GET /ws``.

A connection authenticates at the handshake, then reads frames while
forwarding reply frames from the reply log. Reply frames come only from the
log, never straight from generation, so what one socket sees is exactly
what a resuming socket on another instance sees.

A connection lives no longer than its token: one timer per connection closes
it when the token would no longer be accepted at a handshake, unless an
``auth`` frame has brought a fresh token for the same user in the meantime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.auth.http import authenticate_token, origin_allowed, selected_subprotocol
from parley.auth.tokens import VerifiedToken
from parley.errors import (
    BadRequest,
    Forbidden,
    ParleyError,
    RateLimited,
    Unauthorized,
    error_frame,
)
from parley.observability import context, metrics
from parley.protocol import (
    AuthenticatedFrame,
    FeedbackSavedFrame,
    HandoffState,
    PongFrame,
    ServerFrame,
)
from parley.services import Services
from parley.transport.failures import client_error
from parley.transport.frames import (
    AuthFrame,
    CancelFrame,
    ClientFrame,
    ConfirmFrame,
    FeedbackFrame,
    MessageFrame,
    PingFrame,
    RequestHumanFrame,
    ResumeFrame,
    StartFrame,
    parse_client_frame,
)
from parley.transport.ratelimit import TokenBucket
from parley.transport.watch import ConversationWatch, handoff_frame
from parley.views import SessionView

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
        token = await authenticate_token(
            websocket, services.chat_verifier, allowed_origins=settings.allowed_origins
        )
    except ParleyError as error:
        log.info("websocket refused: %s", error.message)
        await _refuse(websocket, error.message)
        return
    context.bind(user_id=token.principal.user_id)
    await websocket.accept(subprotocol=_subprotocol(websocket))
    metrics.websocket_opened()
    try:
        await ChatConnection(websocket, services, token).serve()
    finally:
        metrics.websocket_closed()


async def _refuse(websocket: WebSocket, reason: str) -> None:
    """Close with 1008 before any frame is exchanged."""
    # With the subprotocol selected, a browser sees the 1008 rather than a failed handshake.
    await websocket.accept(subprotocol=_subprotocol(websocket))
    await websocket.close(code=POLICY_VIOLATION, reason=reason[:120])


def _subprotocol(websocket: WebSocket) -> str | None:
    return selected_subprotocol(websocket.scope.get("subprotocols", ()))


class ChatConnection:
    def __init__(self, websocket: WebSocket, services: Services, token: VerifiedToken) -> None:
        self.websocket = websocket
        self.services = services
        self.user = token.principal
        self.view: SessionView | None = None
        self.followers: dict[str, asyncio.Task[None]] = {}
        self.bucket = TokenBucket(
            services.settings.ws_frames_per_second, services.settings.ws_frame_burst
        )
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._expiry: asyncio.TimerHandle | None = None
        self._expiring: asyncio.Task[None] | None = None  # held: the loop keeps weak refs
        self._expire_with(token)
        self.watch = ConversationWatch(
            services.operations.bus,
            send=self.send,
            follow=lambda reply_id: self._follow(reply_id, 0, restart=False),
            current_state=self._handoff_state,
        )

    async def serve(self) -> None:
        try:
            while True:
                raw = await self._receive()
                if raw is None:
                    return
                await self._handle(raw)
        finally:
            self.watch.close()
            if self._expiry is not None:
                self._expiry.cancel()
            for task in self.followers.values():
                task.cancel()

    async def _receive(self) -> str | None:
        """The next text frame to handle: ``""`` if it was answered here, ``None`` once closed."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect" or self._closed:
            return None
        text = message.get("text")
        size = len(text.encode()) if text is not None else len(message.get("bytes") or b"")
        if size > self.services.settings.max_frame_bytes:
            await self._close(MESSAGE_TOO_BIG, "frame too large")
            return None
        # Every frame counts, binary ones too: refusing one costs as much as any other.
        if not self.bucket.take():
            metrics.rate_limited("websocket")
            await self.send(error_frame(RateLimited("Too many frames; slow down.")))
            return ""
        if text is None:
            await self.send(error_frame(BadRequest("Binary frames are not supported.")))
            return ""
        return str(text)

    async def _handle(self, raw: str) -> None:
        if not raw:
            return
        frame: ClientFrame | None = None
        try:
            frame = parse_client_frame(raw)
            await self._dispatch(frame)
        except Exception as error:
            failure = client_error(error, context="ws frame")
            await self.send(_refusal(failure, frame))

    async def _dispatch(self, frame: ClientFrame) -> None:
        match frame:
            case PingFrame():
                await self.send(PongFrame())
            case StartFrame():
                await self._start(frame)
            case MessageFrame():
                await self._message(frame)
            case CancelFrame():
                await self._cancel(frame)
            case ResumeFrame():
                self._follow(frame.reply_id, frame.after_seq, restart=True)
            case AuthFrame():
                await self._reauthenticate(frame)
            case ConfirmFrame():
                await self.services.replies.confirm(
                    frame.reply_id, frame.call_id, self.user.user_id, approve=frame.approve
                )
            case FeedbackFrame():
                feedback = await self.services.operations.feedback.give(
                    self.user.user_id, frame.message_id, frame.rating, frame.comment
                )
                await self.send(FeedbackSavedFrame(**feedback.public()))
            case RequestHumanFrame():
                await self._request_human(frame)

    async def _start(self, frame: StartFrame) -> None:
        self.view = await self.services.chat.start(
            self.user,
            agent_id=frame.agent,
            conversation_id=frame.conversation_id,
            session_id=frame.session_id,
            personality=frame.personality,
            rules=frame.rules,
        )
        self.watch.watch(str(self.view.conversation.id))
        await self.send(self.view.frame())

    async def _message(self, frame: MessageFrame) -> None:
        if self.view is None:
            raise BadRequest('Send a "start" frame first.')
        accepted = await self.services.chat.send(
            self.user, self.view.conversation, client_id=frame.client_id, text=frame.text
        )
        await self.send(accepted.frame())
        if accepted.reply_id is not None:  # None: a person holds the conversation
            self._follow(accepted.reply_id, 0, restart=False)

    async def _request_human(self, frame: RequestHumanFrame) -> None:
        if self.view is None:
            raise BadRequest('Send a "start" frame first.')
        conversation_id = str(self.view.conversation.id)
        desk = self.services.operations.desk
        state = await desk.ask_for_person(self.user, conversation_id, frame.reason)
        await self.send(handoff_frame(conversation_id, state))

    async def _handoff_state(self, conversation_id: str) -> HandoffState:
        conversation = await self.services.conversations.get(self.user.user_id, conversation_id)
        return conversation.handoff()

    async def _cancel(self, frame: CancelFrame) -> None:
        await self.services.replies.cancel(frame.reply_id, self.user.user_id)
        # Every cancel is answered by the reply's `done`, also when it had
        # ended already (the client raced its end, or never followed it). A
        # socket following the reply gets it in the stream as usual.
        self._follow(frame.reply_id, 0, restart=False, ending_only=True)

    def _follow(
        self, reply_id: str, after_seq: int, *, restart: bool, ending_only: bool = False
    ) -> None:
        running = self.followers.get(reply_id)
        if running is not None and not running.done():
            if not restart:
                return
            running.cancel()
        self.followers[reply_id] = asyncio.create_task(
            self._forward(reply_id, after_seq, ending_only=ending_only)
        )

    async def _forward(self, reply_id: str, after_seq: int, *, ending_only: bool = False) -> None:
        try:
            async for event in self.services.replies.follow(reply_id, self.user.user_id, after_seq):
                if ending_only and not event.ends_reply:
                    continue
                await self.send_encoded(event.json)
        except (WebSocketDisconnect, asyncio.CancelledError):
            raise
        except Exception as error:
            with contextlib.suppress(Exception):
                failure = client_error(error, context="ws follow")
                request = "cancel" if ending_only else "resume"
                await self.send(error_frame(failure, reply_id=reply_id, request=request))

    # -- the token's lifetime ---------------------------------------------------

    async def _reauthenticate(self, frame: AuthFrame) -> None:
        """Swap in a fresh token; a bad one is refused and the current one stays."""
        token = await self.services.chat_verifier.verify_claims(frame.token)
        if (token.principal.user_id, token.principal.guest_agent) != (
            self.user.user_id,
            self.user.guest_agent,
        ):
            raise Forbidden("That token is for another user.")
        self.user = token.principal
        self._expire_with(token)
        await self.send(AuthenticatedFrame(expires_at=token.expires_at))

    def _expire_with(self, token: VerifiedToken) -> None:
        """(Re)arm the connection's one timer for ``token``'s end."""
        if self._expiry is not None:
            self._expiry.cancel()
        # The verifier accepts a token until its leeway past ``exp``; the socket
        # lives as long, so a handshake is never accepted only to close at once.
        remaining = token.expires_at + self.services.chat_verifier.leeway - time.time()
        self._expiry = asyncio.get_running_loop().call_later(max(0.0, remaining), self._expired)

    def _expired(self) -> None:
        self._expiring = asyncio.create_task(self._close_expired())

    async def _close_expired(self) -> None:
        log.info("websocket of %s closed: token expired", self.user.user_id)
        # The client may have gone meanwhile; then there is nothing to tell or close.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.send(error_frame(Unauthorized("token expired")))
            await self._close(POLICY_VIOLATION, "token expired")

    # -- sending -----------------------------------------------------------------

    async def _close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            if not self._closed:
                self._closed = True
                await self.websocket.close(code=code, reason=reason)

    async def send(self, frame: ServerFrame) -> None:
        await self.send_encoded(json.dumps(frame.to_dict(), separators=(",", ":")))

    async def send_encoded(self, text: str) -> None:
        async with self._send_lock:
            if self._closed:
                return  # nothing may follow a close frame
            await self.websocket.send_text(text)


def _refusal(error: ParleyError, frame: ClientFrame | None) -> ServerFrame:
    """The ``error`` frame for a refused client frame, naming what it answers
    (nothing, if the frame could not be read)."""
    match frame:
        case MessageFrame():
            return error_frame(error, client_id=frame.client_id)
        case CancelFrame() | ResumeFrame():  # ``request`` tells it from the reply's own error
            return error_frame(error, reply_id=frame.reply_id, request=frame.type)
        case ConfirmFrame():
            return error_frame(error, reply_id=frame.reply_id, call_id=frame.call_id)
        case FeedbackFrame():
            return error_frame(error, message_id=frame.message_id)
        case None:
            return error_frame(error)
        case _:  # start, auth, request_human, ping: one of each at a time
            return error_frame(error, request=frame.type)
