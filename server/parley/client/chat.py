"""A chat over Parley's WebSocket that survives dropped connections.

The client follows every reply it sees. When the connection drops it
reconnects with backoff, re-attaches to its session (``start`` with the
session id, on whichever instance answers), ``resume``s each unfinished reply
after the last ``seq`` it got, and sends again every message whose
``accepted`` it never saw (same ``client_id``: the server starts nothing
twice). Repeats are dropped: numbered frames by ``seq``, notices by rule and
action, a reply's error by code, anything after a reply's ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from parley.client.connection import DEFAULT_MAX_SIZE, Connection
from parley.client.errors import ParleyError
from parley.client.replies import Replies
from parley.client.reply import Reply
from parley.protocol import (
    AcceptedFrame,
    DeltaFrame,
    DoneFrame,
    ErrorFrame,
    NoticeFrame,
    ResyncFrame,
    ServerFrame,
    SessionFrame,
    SourcesFrame,
    ToolCallFrame,
    ToolResultFrame,
    parse_frame,
)

log = logging.getLogger(__name__)

Token = str | Callable[[], str | Awaitable[str]] | None
REFUSED = frozenset({1008, 1009})  # policy (token, Origin), frame too large


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: doubling from ``base`` up to ``cap``, jittered."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        ceiling: float = min(self.cap, self.base * 2.0 ** min(attempt, 16))
        return ceiling / 2 + random.random() * ceiling / 2


async def connect(url: str, token: Token = None, **options: Any) -> ParleyClient:
    """Open a :class:`ParleyClient` (see its parameters)."""
    return await ParleyClient.connect(url, token, **options)


class ParleyClient:
    """``async with await ParleyClient.connect(url, token) as client: ...``

    ``token`` is a JWT, or a function (sync or async) returning one, asked
    again for every connection; it goes in the ``Authorization`` header.
    """

    def __init__(
        self,
        url: str,
        token: Token = None,
        *,
        origin: str | None = None,
        headers: Mapping[str, str] | None = None,
        reconnect: bool = True,
        backoff: Backoff = Backoff(),
        max_size: int | None = DEFAULT_MAX_SIZE,
    ) -> None:
        self.url = url
        self._token = token
        self._origin = origin
        self._headers = dict(headers or {})
        self._reconnect = reconnect
        self._backoff = backoff
        self._max_size = max_size
        self._connection: Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed: ParleyError | None = None  # set once the client is done for
        self._target: dict[str, str] = {}
        self.session: SessionFrame | None = None  # the last ``session`` frame
        self._socket_session = False  # the current connection has had its ``session``
        self._resuming = False  # the connection dropped after a session: resume on the next
        self._starting: asyncio.Future[SessionFrame] | None = None
        self._replies = Replies()
        self._outbox: list[dict[str, Any]] = []  # frames waiting for a session
        self._listeners: set[asyncio.Queue[ServerFrame | None]] = set()  # frames()
        self.reconnects = 0  # connections opened after a drop

    @classmethod
    async def connect(cls, url: str, token: Token = None, **options: Any) -> ParleyClient:
        client = cls(url, token, **options)
        client._connection = await client._open()
        client._reader = asyncio.create_task(client._read(), name="parley-client")
        return client

    async def __aenter__(self) -> ParleyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the protocol ---------------------------------------------------------------

    async def start(
        self,
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
        session_id: str | None = None,
        personality: str | None = None,
        rules: str | None = None,
    ) -> SessionFrame:
        """Open a session; raises :class:`ParleyError` (``unknown_agent``, ``not_found``…)."""
        target = {
            "agent": agent,
            "conversation_id": conversation_id,
            "session_id": session_id,
            "personality": personality,
            "rules": rules,
        }
        self._check_open()
        self._target = {key: value for key, value in target.items() if value is not None}
        self.session, self._socket_session, self._resuming = None, False, False
        superseded = ParleyError("superseded", "Another start replaced the session.")
        self._replies.fail_pending(superseded)
        if self._starting is not None and not self._starting.done():
            self._starting.set_exception(superseded)
        self._starting = starting = asyncio.get_running_loop().create_future()
        await self._send_now({"type": "start", **self._target})  # after a drop, the reconnect does
        return await asyncio.shield(starting)

    async def send(self, text: str, *, client_id: str | None = None) -> Reply:
        """Send a message; its :class:`Reply` follows it.

        The same ``client_id`` again while its reply runs gives the same Reply.
        """
        client_id = client_id or str(uuid.uuid4())
        known = self._replies.of_message(client_id)
        if known is not None:
            return known
        reply = Reply(client_id=client_id)
        if self._closed is not None:
            reply.fail(self._closed)
            return reply
        frame = {"type": "message", "client_id": client_id, "text": text}
        self._replies.expect(client_id, reply, frame)
        if self._socket_session:
            await self._send_now(frame)
        return reply

    async def ask(self, text: str, *, client_id: str | None = None) -> Reply:
        """Send a message and wait for its reply to end."""
        reply = await self.send(text, client_id=client_id)
        await reply.done()
        return reply

    async def follow(self, reply_id: str, *, after_seq: int = 0) -> Reply:
        """A reply this client did not send (e.g. the session's ``active_reply``)."""
        known = self._replies.followed(reply_id)
        if known is not None:
            return known
        reply = self._replies.follow(reply_id, after_seq)
        await self._send_or_queue({"type": "resume", "reply_id": reply_id, "after_seq": after_seq})
        return reply

    async def cancel(self, reply_id: str) -> None:
        await self._send_or_queue({"type": "cancel", "reply_id": reply_id})

    async def confirm(self, reply_id: str, call_id: str, *, approve: bool) -> None:
        frame = {"type": "confirm", "reply_id": reply_id, "call_id": call_id, "approve": approve}
        await self._send_or_queue(frame)

    async def request_human(self, reason: str | None = None) -> None:
        frame = {"type": "request_human"} | ({"reason": reason} if reason else {})
        await self._send_or_queue(frame)

    async def feedback(self, message_id: str, rating: str, comment: str | None = None) -> None:
        frame = {"type": "feedback", "message_id": message_id, "rating": rating}
        await self._send_or_queue(frame | ({"comment": comment} if comment is not None else {}))

    async def frames(self) -> AsyncIterator[ServerFrame]:
        """Every frame from now on, repeats dropped, until the client closes."""
        queue: asyncio.Queue[ServerFrame | None] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            while (frame := await queue.get()) is not None:
                yield frame
        finally:
            self._listeners.discard(queue)

    async def close(self) -> None:
        connection, reader = self._connection, self._reader
        self._shutdown(ParleyError("closed", "The client was closed."))
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if connection is not None:
            await connection.close()

    # -- the connection -------------------------------------------------------------

    async def _open(self) -> Connection:
        token = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        return await Connection.open(
            self.url, token, origin=self._origin, headers=self._headers, max_size=self._max_size
        )

    async def _read(self) -> None:
        """Read frames; after a drop, reconnect and pick up where the client was."""
        while True:
            connection = self._connection
            assert connection is not None
            try:
                while True:
                    await self._receive(await connection.receive_json())
            except ConnectionClosed:
                pass
            had_session, self._socket_session = self._socket_session, False  # frames wait now
            if self.session is not None:
                self._resuming = True
            code = connection.close_code
            # A refusal at the handshake is final; a token that expired on a
            # working socket is not, when a token function can give a fresh one.
            refused = code in REFUSED and not (had_session and callable(self._token))
            if not self._reconnect or refused:
                kind = "unauthorized" if code == 1008 else "closed"
                self._shutdown(ParleyError(kind, f"The connection closed ({code})."))
                return
            self._connection = await self._reopen()
            self.reconnects += 1
            await self._send_start()

    async def _reopen(self) -> Connection:
        attempt = 0
        while True:
            await asyncio.sleep(self._backoff.delay(attempt))  # backoff between attempts
            attempt += 1
            try:
                return await self._open()
            except (OSError, InvalidHandshake, TimeoutError) as error:
                log.info("parley: reconnecting to %s failed: %s", self.url, error)

    async def _send_start(self) -> None:
        # After a drop the session is re-attached by its id.
        target = {"session_id": self.session.session_id} if self.session else self._target
        if target:
            await self._send_now({"type": "start", **target})

    async def _send_now(self, frame: dict[str, Any]) -> None:
        if self._connection is None:
            return
        # A connection that just dropped: the reader reconnects and sends again from there.
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(frame)

    async def _send_or_queue(self, frame: dict[str, Any]) -> None:
        self._check_open()
        if self._socket_session:
            await self._send_now(frame)
        else:
            self._outbox.append(frame)

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed
        if self._connection is None:
            raise ParleyError("closed", "Not connected: use ParleyClient.connect.")

    def _shutdown(self, error: ParleyError) -> None:
        if self._closed is not None:
            return
        self._closed = error
        if self._starting is not None and not self._starting.done():
            self._starting.set_exception(error)
            self._starting.exception()  # retrieved: start() may not be waiting
        self._replies.fail_all(error)
        for queue in self._listeners:
            queue.put_nowait(None)

    # -- frames from the server -------------------------------------------------------

    async def _receive(self, data: dict[str, Any]) -> None:
        try:
            frame = parse_frame(data)
        except ValueError as error:  # a newer server's frame: skip it
            log.debug("parley: skipped a frame: %s", error)
            return
        if await self._route(frame):
            for queue in self._listeners:
                queue.put_nowait(frame)

    async def _route(self, frame: ServerFrame) -> bool:
        """Hand the frame to whoever waits for it; False if it repeats one."""
        match frame:
            case SessionFrame():
                await self._on_session(frame)
            case AcceptedFrame():
                await self._on_accepted(frame)
            case ErrorFrame(reply_id=str(reply_id), call_id=None, request=None):
                return self._replies.to_reply(reply_id, frame)  # the reply's failure; done follows
            case ErrorFrame():
                self._on_refusal(frame)
            case (
                DeltaFrame()
                | ToolCallFrame()
                | ToolResultFrame()
                | SourcesFrame()
                | NoticeFrame()
                | DoneFrame()
                | ResyncFrame()
            ):
                return self._replies.to_reply(frame.reply_id, frame)
        return True

    async def _on_session(self, frame: SessionFrame) -> None:
        resuming, self._resuming = self._resuming, False
        self.session, self._socket_session = frame, True
        if self._starting is not None and not self._starting.done():
            self._starting.set_result(frame)
        outbox, self._outbox = self._outbox, []
        if resuming:
            for reply in self._replies.running():
                resume = {"type": "resume", "reply_id": reply.reply_id, "after_seq": reply.last_seq}
                await self._send_now(resume)
        for message in self._replies.unsent():
            await self._send_now(message)
        for queued in outbox:
            await self._send_now(queued)

    async def _on_accepted(self, frame: AcceptedFrame) -> None:
        reply = self._replies.accepted(frame.client_id)
        if reply is None:
            return  # another client's message, or accepted twice
        # Accepted again (this client_id was sent before): the server follows
        # the reply from its start, unless this connection follows it already.
        if frame.reply_id is not None and self._replies.follow_as(frame.reply_id, reply):
            await self._send_now({"type": "resume", "reply_id": frame.reply_id, "after_seq": 0})
        self._replies.take(reply, frame)

    def _on_refusal(self, frame: ErrorFrame) -> None:
        error = ParleyError.of(frame)
        if self._replies.refuse(frame, error):
            return
        if (
            self._starting is not None
            and not self._starting.done()
            and frame.request in (None, "start")
            and not (frame.reply_id or frame.call_id or frame.message_id)
        ):
            self._starting.set_exception(error)
            self._replies.fail_pending(error)  # their session never came
