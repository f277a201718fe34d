"""Running replies on this instance, and looking after everyone's.

:class:`ReplyService` owns a reply's life: it opens the reply (marking its
conversation busy), starts its task once the turn is on its way to Postgres
(:class:`PendingReply` is that handshake), abandons a reply whose turn was
never stored, routes cancels that arrive on any instance to the task that
owns the reply (over one Redis pub/sub channel), and runs the
:class:`~parley.replies.sweeper.Sweeper`, which closes replies whose owner died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import Any
from uuid import UUID

from parley.errors import Conflict, NotFound
from parley.observability import metrics
from parley.protocol import ActiveReply, ReplyStatus, ResyncFrame
from parley.replies.events import Event
from parley.replies.job import ReplyDeps, ReplyJob, StopSignal
from parley.replies.log import Opening
from parley.replies.sweeper import Sweeper
from parley.replies.task import run_reply
from parley.storage.budget import Reservation
from parley.storage.conversations import ConversationStore
from parley.storage.keys import Keys
from parley.storage.redis import RedisClient

log = logging.getLogger(__name__)

# How long interrupted replies get to store themselves at shutdown; any left
# are closed by another instance's sweeper once their leases expire.
STORE_INTERRUPTED_SECONDS = 10


class PendingReply:
    """A reply whose task already calls the model while its turn is being stored.

    The task writes nothing until it hears :meth:`stored`; after :meth:`dropped`
    it vanishes without a trace (the turn was a resend, or could not be stored).
    """

    def __init__(self, turn_stored: asyncio.Future[bool]) -> None:
        self._turn_stored = turn_stored

    def stored(self) -> None:
        self._turn_stored.set_result(True)

    def dropped(self) -> None:
        if not self._turn_stored.done():
            self._turn_stored.set_result(False)


class ReplyService:
    def __init__(
        self,
        *,
        redis: RedisClient,
        keys: Keys,
        deps: ReplyDeps,
        conversations: ConversationStore,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.deps = deps
        self.log = deps.log
        self.conversations = conversations
        self._running: dict[str, tuple[asyncio.Task[None], StopSignal]] = {}
        self.sweeper = Sweeper(
            redis=redis,
            keys=keys,
            deps=deps,
            conversations=conversations,
            running_here=self._running.__contains__,
        )
        self._background: list[asyncio.Task[None]] = []

    # -- opening, starting and stopping --------------------------------------

    async def open(
        self,
        *,
        reply_id: str,
        user_id: str,
        conversation_id: str,
        client_id: str,
        agent_id: str,
        by_operator: bool = False,
        read_history: bool = False,
    ) -> Opening:
        """Register a reply owned by this instance and mark its conversation busy
        (and read its cached history, with ``read_history``).

        Not ``opened`` if the conversation is busy or ``client_id`` was accepted
        there before; raises :class:`~parley.replies.log.ConversationHeld` if a
        person holds the conversation (unless the reply is theirs).
        """
        return await self.log.open(
            reply_id=reply_id,
            user_id=user_id,
            conversation_id=conversation_id,
            client_id=client_id,
            agent_id=agent_id,
            owner=self.deps.owner,
            lease_ms=self.deps.lease_ms,
            by_operator=by_operator,
            read_history=read_history,
        )

    async def abandon(
        self,
        reply_id: str,
        conversation_id: str,
        client_id: str,
        reservation: Reservation | None = None,
    ) -> None:
        """Forget an opened reply whose turn was never stored, and return its budget."""
        await self.log.abandon(reply_id, conversation_id, client_id)
        if reservation is not None:
            await self.deps.budget.settle(reservation, 0)

    def start(self, job: ReplyJob) -> PendingReply:
        """Start the opened reply's task: it calls the model at once, and writes
        nothing until the returned handshake says its turn is stored."""
        turn_stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        stop = StopSignal()
        feed = self.deps.feeds.open(job.reply_id, job.user_id)
        task = asyncio.create_task(
            run_reply(job, self.deps, stop, feed, turn_stored), name=f"reply-{job.reply_id}"
        )
        self._running[job.reply_id] = (task, stop)
        metrics.reply_started()
        task.add_done_callback(lambda _: self._ended(job.reply_id))
        return PendingReply(turn_stored)

    def _ended(self, reply_id: str) -> None:
        self._running.pop(reply_id, None)
        metrics.reply_ended()

    async def cancel(self, reply_id: str, user_id: str) -> None:
        """Ask the reply's owner, wherever it runs, to stop it."""
        state = await self.log.state(reply_id)
        if state is None or state.user_id != user_id:
            raise NotFound("No such reply.")
        if not state.running:
            return
        await self.redis.set(self.keys.cancel(reply_id), "1", ex=3600)
        await self.redis.publish(self.keys.control_channel, json.dumps({"cancel": reply_id}))

    async def confirm(self, reply_id: str, call_id: str, user_id: str, *, approve: bool) -> None:
        """The user's answer to a tool call waiting for approval, wherever its reply runs."""
        state = await self.log.state(reply_id)
        if state is None or state.user_id != user_id:
            raise NotFound("No such reply.")
        answered = await self.deps.tools.confirmations.answer(
            reply_id, call_id, approve=approve, by=user_id
        )
        if not answered:
            raise Conflict("That tool call is not waiting for approval.")

    def _stop_local(self, reply_id: str) -> None:
        running = self._running.get(reply_id)
        if running is not None:
            running[1].set(ReplyStatus.CANCELLED)

    # -- reading ---------------------------------------------------------------

    async def running_in(self, conversation_id: str) -> ActiveReply | None:
        """The reply running in the conversation, and the last frame it numbered."""
        reply_id = await self.log.running_reply(conversation_id)
        if reply_id is None:
            return None
        state = await self.log.state(reply_id)
        if state is None or not state.running:
            return None
        return {"reply_id": reply_id, "last_seq": await self.log.last_seq(reply_id)}

    async def follow(self, reply_id: str, user_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        """The reply's events after ``after_seq``, live, until ``done``; or one
        ``resync`` event when the reply is older than the resume window.

        A reply running here is followed in process; any other is read from
        its Redis Stream.
        """
        feed = self.deps.feeds.get(reply_id)
        if feed is not None:
            if feed.user_id != user_id:
                raise NotFound("No such reply.")
            async for event in feed.follow(after_seq):
                yield event
                if event.ends_reply:
                    return
                if event.numbered:
                    after_seq = event.at
        state = await self.log.state(reply_id)
        if state is not None:
            if state.user_id != user_id:
                raise NotFound("No such reply.")
            async for event in self.log.follow(reply_id, after_seq):
                yield event
                if event.ends_reply:
                    return
        yield Event.of(await self.resync_frame(reply_id, user_id), at=after_seq)

    async def resync_frame(self, reply_id: str, user_id: str) -> ResyncFrame:
        message = await self.conversations.message_for_reply(reply_id)
        if message is None:
            raise NotFound("No such reply.")
        await self.conversations.get(user_id, message.conversation_id)  # ownership
        steps = await self.deps.tools.store.for_reply(UUID(reply_id))
        message = replace(message, tool_steps=tuple(steps))
        return ResyncFrame(reply_id=reply_id, message=message.public())

    # -- background work -------------------------------------------------------

    async def sweep(self, *, include_orphans: bool = False) -> list[str]:
        """Close replies whose owner died; returns the ids it closed (:mod:`.sweeper`)."""
        return await self.sweeper.sweep(include_orphans=include_orphans)

    def run_background(self, sweep_interval: float) -> None:
        self._background = [
            asyncio.create_task(self._listen_for_cancels(), name="reply-cancels"),
            asyncio.create_task(self.sweeper.run(sweep_interval), name="reply-sweeper"),
        ]

    async def shutdown(
        self, grace_seconds: float, *, stop_now: asyncio.Event | None = None
    ) -> None:
        """Let running replies finish for up to ``grace_seconds`` (or until
        ``stop_now`` is set), then store the rest as ``interrupted``."""
        for task in self._background:
            task.cancel()
        tasks = [task for task, _ in self._running.values()]
        if not tasks:
            return
        log.warning(
            "waiting for %s to finish (up to %g s); press Ctrl-C again to stop now",
            _replies(len(tasks)),
            grace_seconds,
        )
        await _first_of(asyncio.wait(tasks), stop_now, seconds=grace_seconds)
        pending = [task for task in tasks if not task.done()]
        if pending:
            log.warning("interrupting %s; the text so far is kept", _replies(len(pending)))
            for _, stop in list(self._running.values()):
                stop.set(ReplyStatus.INTERRUPTED)
            await asyncio.wait(pending, timeout=STORE_INTERRUPTED_SECONDS)

    async def _listen_for_cancels(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.keys.control_channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._on_control(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("control channel lost (%s); resubscribing", error)
                metrics.storage_error("redis", "control_channel")
                await asyncio.sleep(1)

    def _on_control(self, data: bytes) -> None:
        with contextlib.suppress(ValueError, TypeError):
            command: dict[str, Any] = json.loads(data)
            if "cancel" in command:
                self._stop_local(str(command["cancel"]))
            elif "confirm" in command:
                confirmations = self.deps.tools.confirmations
                confirmations.announced(str(command["confirm"]), str(command["call_id"]))


async def _first_of(
    work: Awaitable[object], stop_now: asyncio.Event | None, *, seconds: float
) -> None:
    """Wait for ``work``, for at most ``seconds``, and no longer than ``stop_now`` is unset."""
    waiting = [asyncio.ensure_future(work)]
    if stop_now is not None:
        waiting.append(asyncio.ensure_future(stop_now.wait()))
    try:
        await asyncio.wait(waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waiting:
            future.cancel()


def _replies(count: int) -> str:
    return f"{count} reply" if count == 1 else f"{count} replies"
