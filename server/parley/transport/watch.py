"""What a chat socket hears about its conversation besides the replies it asked for.

While a socket is attached to a conversation it watches the operations
channel for it: a person asked for, joining or leaving (``handoff`` frames),
an operator's reply (followed like any reply, from its first frame), a new
title (``title`` frames). When the channel was lost for a while the socket
re-reads the handoff state and sends it, so the user is never left with a
stale one; missed operator replies are in the history of the next session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from parley.operators.events import OperationsBus, OperationsEvent
from parley.protocol import HandoffFrame, HandoffState, ServerFrame, TitleFrame

log = logging.getLogger(__name__)

Send = Callable[[ServerFrame], Awaitable[None]]


def handoff_frame(conversation_id: str, state: Mapping[str, Any]) -> HandoffFrame:
    """The ``handoff`` frame of a handoff state (or of an operations event)."""
    return HandoffFrame(conversation_id=conversation_id, state=state["state"], by=state.get("by"))


class ConversationWatch:
    def __init__(
        self,
        bus: OperationsBus,
        *,
        send: Send,
        follow: Callable[[str], None],
        current_state: Callable[[str], Awaitable[HandoffState]],
    ) -> None:
        self._bus = bus
        self._send = send
        self._follow = follow
        self._current_state = current_state
        self._conversation_id: str | None = None
        self._unwatch: Callable[[], None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def watch(self, conversation_id: str) -> None:
        if conversation_id == self._conversation_id:
            return
        self.stop()
        self._conversation_id = conversation_id
        self._unwatch = self._bus.watch(conversation_id, self._on_event)

    def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        self._unwatch = None
        self._conversation_id = None
        for task in self._sending:
            task.cancel()

    def close(self) -> None:
        """Stop for good, and let go of the socket's callbacks.

        They are bound to the socket, which holds this watch: kept, the two
        would be a reference cycle, and a closed socket with everything hanging
        off it (its protocol objects, tasks, buckets: about 130 objects) would
        wait for a full collection of the heap instead of being freed at once.
        """
        self.stop()
        del self._send, self._follow, self._current_state

    def _on_event(self, event: OperationsEvent) -> None:
        conversation_id = self._conversation_id
        if conversation_id is None:
            return
        kind = event.get("kind")
        if kind == "reply" and isinstance(event.get("reply_id"), str):
            self._follow(event["reply_id"])
        elif kind == "handoff":
            self._later(self._send(handoff_frame(conversation_id, event)))
        elif kind == "title" and isinstance(event.get("title"), str):
            frame = TitleFrame(conversation_id=conversation_id, title=event["title"])
            self._later(self._send(frame))
        elif kind == "resync":
            self._later(self._resync(conversation_id))

    async def _resync(self, conversation_id: str) -> None:
        await self._send(handoff_frame(conversation_id, await self._current_state(conversation_id)))

    def _later(self, sending: Awaitable[None]) -> None:
        """Send from a watcher (which may not block); tasks start, and so send, in order."""
        task = asyncio.create_task(self._quietly(sending))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    @staticmethod
    async def _quietly(sending: Awaitable[None]) -> None:
        with contextlib.suppress(Exception):  # the socket closed meanwhile
            await sending
