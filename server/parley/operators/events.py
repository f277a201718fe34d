"""Operations events: what happens to a conversation besides its agent's replies.

A request for a person, a takeover, a release, an operator's reply, a user
message stored while a person holds the conversation, a generated title:
each is published once on a Redis channel, every instance receives it, and
hands it to the sockets and operator consoles there that watch the
conversation.

These are hints, not a log. Everything they announce is stored (Postgres,
and an operator reply's frames in its reply log), so a watcher that misses
one catches up when it next starts a session or reads the conversation.
When this instance's subscription drops, every watcher is told so
(``{"kind": "resync"}``) once it is back, to read again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from parley.storage.redis import RedisClient

log = logging.getLogger(__name__)

OperationsEvent = dict[str, Any]
Watcher = Callable[[OperationsEvent], None]
RESYNC: OperationsEvent = {"kind": "resync"}
SUBSCRIBE_TIMEOUT_SECONDS = 10.0
RETRY_SECONDS = 1.0


class OperationsBus:
    def __init__(self, redis: RedisClient, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._by_conversation: dict[str, set[Watcher]] = defaultdict(set)
        self._everything: set[Watcher] = set()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen, returning once subscribed: nothing published after start-up is missed."""
        self._task = asyncio.create_task(self._listen(), name="operations-events")
        await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, event: OperationsEvent) -> None:
        await self._redis.publish(self._channel, json.dumps(event, separators=(",", ":")))

    def watch(self, conversation_id: str | None, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher`` with the events of one conversation (``None``: of all of them).

        Watchers run on the event loop and must not block; returns the function
        that stops watching.
        """
        watchers = (
            self._everything if conversation_id is None else self._by_conversation[conversation_id]
        )
        watchers.add(watcher)

        def unwatch() -> None:
            watchers.discard(watcher)
            if conversation_id is not None and not watchers:
                self._by_conversation.pop(conversation_id, None)

        return unwatch

    async def _listen(self) -> None:
        lost = False
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._subscribed.set()
                    if lost:  # events published meanwhile are gone: watchers read again
                        self._deliver_everywhere(RESYNC)
                        lost = False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("operations channel lost (%s); resubscribing", error)
                lost = True
                await asyncio.sleep(RETRY_SECONDS)

    def _on_message(self, data: bytes | str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("ignoring a malformed operations event")
            return
        if not isinstance(event, dict):
            return
        conversation_id = event.get("conversation_id")
        targets = set(self._everything)
        if isinstance(conversation_id, str):
            targets |= self._by_conversation.get(conversation_id, set())
        self._deliver(targets, event)

    def _deliver_everywhere(self, event: OperationsEvent) -> None:
        targets = set(self._everything)
        for watchers in self._by_conversation.values():
            targets |= watchers
        self._deliver(targets, event)

    @staticmethod
    def _deliver(targets: set[Watcher], event: OperationsEvent) -> None:
        for watcher in targets:
            try:
                watcher(event)
            except Exception:  # one broken watcher must not starve the others
                log.exception("an operations watcher failed")
