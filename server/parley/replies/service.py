"""Running replies on this instance, and looking after everyone's.

:class:`ReplyService` owns a reply's life: it opens the reply (marking its
conversation busy), starts its task once the turn is on its way to Postgres
(:class:`PendingReply` is that handshake), abandons a reply whose turn was
never stored, routes cancels that arrive on any instance to the task that
owns the reply (over one Redis pub/sub channel), and sweeps replies whose
owner died: a reply whose lease has expired is stored as ``interrupted``
with the text it had, and its log is closed.
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

from redis.asyncio.cluster import RedisCluster

from parley.errors import Conflict, NotFound
from parley.llm.base import CallRecord, ChatMessage, ModelRef
from parley.observability import metrics
from parley.protocol import ActiveReply, ReplyStatus, ResyncFrame, ToolResultFrame
from parley.replies.events import Event
from parley.replies.job import ReplyDeps, ReplyJob, StopSignal
from parley.replies.log import Opening
from parley.replies.memory import FORGET
from parley.replies.task import done_frame, run_reply
from parley.storage.budget import Reservation
from parley.storage.conversations import ConversationStore
from parley.storage.keys import SHARDS, Keys
from parley.storage.ledger import FinishedReply
from parley.storage.records import Message, ToolStep
from parley.storage.redis import RedisClient, as_text

log = logging.getLogger(__name__)

# Postgres rows still "streaming" this long after they started, with no live
# reply in Redis, were orphaned (e.g. Redis lost its data): close them.
ORPHAN_AGE_SECONDS = 300
# Shards' active sets read per pipeline when sweeping a cluster (~2 ms of CPU each).
SWEEP_SLICE = 128
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
        self._active_sets = [keys.active_replies(shard) for shard in range(SHARDS)]
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

    def run_background(self, sweep_interval: float) -> None:
        self._background = [
            asyncio.create_task(self._listen_for_cancels(), name="reply-cancels"),
            asyncio.create_task(self._sweep_forever(sweep_interval), name="reply-sweeper"),
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

    async def _sweep_forever(self, interval: float) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(interval)
            rounds += 1
            try:
                await self.sweep(include_orphans=rounds % 20 == 0)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("reply sweep failed: %s", error)
                if (backend := metrics.backend_of(error)) is not None:
                    metrics.storage_error(backend, "sweep")

    async def sweep(self, *, include_orphans: bool = False) -> list[str]:
        """Close replies whose owner died; returns the ids it closed."""
        closed = []
        for reply_id in await self._active_replies():
            if reply_id in self._running or await self.redis.exists(self.keys.lease(reply_id)):
                continue
            if await self._interrupt(reply_id):
                closed.append(reply_id)
        if include_orphans:
            for reply_uuid in await self.deps.ledger.stale_streaming(ORPHAN_AGE_SECONDS):
                reply_id = str(reply_uuid)
                orphaned = reply_id not in self._running and not await self.log.exists(reply_id)
                if orphaned and await self._interrupt(reply_id, orphan=True):
                    closed.append(reply_id)
        return closed

    async def _lost_call(self, message: Message, text: str) -> tuple[CallRecord, ...]:
        """The upstream call a dead instance was making, its usage estimated."""
        if message.model is None:
            return ()
        model = ModelRef.parse(message.model)
        prompt = await self.conversations.recent_context(
            message.conversation_id, self.deps.memory.size, before=message.id
        )
        tokens = self.deps.router.counter.for_model(model)
        sent = [ChatMessage(m.role, m.content) for m in prompt]  # type: ignore[arg-type]
        prompt_tokens, completion_tokens = tokens.count_messages(sent), tokens.count(text)
        return (
            CallRecord(
                model,
                "interrupted",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                estimated=True,
                cost_usd=self.deps.router.cost_usd(model, prompt_tokens, completion_tokens),
                error="its instance stopped during the call; usage estimated",
            ),
        )

    async def _report_interrupted(self, reply_id: str, steps: list[ToolStep], seq: int) -> int:
        """A ``tool_result`` for each call the dead owner left unfinished; the last seq."""
        frames = []
        for step in steps:
            seq += 1
            frame = ToolResultFrame(reply_id=reply_id, seq=seq, **step.result())
            frames.append(Event.of(frame, at=seq))
        await self.log.append(reply_id, frames)
        return seq

    async def _active_replies(self) -> list[str]:
        """Every running reply, as the shards' active sets say.

        One SUNION of them all on a single Redis; on a cluster (where a command's
        keys must share a slot) a pipeline of SMEMBERS, one round trip per node,
        in slices that leave the event loop to running replies in between.
        """
        if not isinstance(self.redis, RedisCluster):
            return [as_text(member) for member in await self.redis.sunion(self._active_sets)]
        found: list[str] = []
        for start in range(0, SHARDS, SWEEP_SLICE):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in self._active_sets[start : start + SWEEP_SLICE]:
                    pipe.smembers(key)
                shards: list[set[bytes]] = await pipe.execute()
            found += (as_text(member) for members in shards for member in members)
        return found

    async def _still_active(self, reply_id: str) -> bool:
        return bool(await self.redis.sismember(self.keys.active_replies_of(reply_id), reply_id))

    async def _interrupt(self, reply_id: str, *, orphan: bool = False) -> bool:
        """Store a reply whose owner died as ``interrupted`` and close its log.

        An ``orphan`` is a reply Redis no longer knows (its state was lost
        with a Redis restart): only Postgres says it is still streaming.
        """
        claimed = await self.redis.set(self.keys.reaping(reply_id), self.deps.owner, nx=True, ex=60)
        # The sweep works from a snapshot of the active set: a reply that ended
        # normally since then has left the set and must not be closed again.
        # (An orphan was never in it; storing it below is conditional anyway.)
        if not claimed or not (orphan or await self._still_active(reply_id)):
            return False
        message = await self.conversations.message_for_reply(reply_id)
        if message is None:  # opened but never stored: nothing to keep
            await self.redis.srem(self.keys.active_replies_of(reply_id), reply_id)
            return False
        text, last_seq = await self.log.written(reply_id)
        reply = await self._lost_reply(message, text)
        status = ReplyStatus.INTERRUPTED
        if await self.deps.ledger.finish(reply) is None:  # its owner stored it after all
            if orphan or not await self._still_active(reply_id):
                return False  # ...and closed its log too
            final = await self.conversations.message_for_reply(reply_id)
            status = ReplyStatus(final.status) if final is not None else status
        else:
            metrics.reply_stored(reply, self.deps.router.cost_usd)
            steps = await self.deps.tools.store.interrupt(reply.reply_id)
            last_seq = await self._report_interrupted(reply_id, steps, last_seq)
        log.warning("reply %s lost its owner; closed as %s", reply_id, status)
        done = Event.of(done_frame(reply_id, message.id, status, reply.totals), at=last_seq)
        # What the reply stored is not known here: the history is read afresh next time.
        await self.log.close(reply_id, str(message.conversation_id), done, history=FORGET)
        return True

    async def _owner_and_agent(self, message: Message) -> tuple[str, str]:
        """Whose reply it was and which agent wrote it: as the reply was opened, else
        (an orphan whose Redis state is gone) as its conversation says."""
        state = await self.log.state(str(message.reply_id))
        if state is not None:
            return state.user_id, state.agent_id
        conversation = await self.conversations.find(message.conversation_id)
        if conversation is None:
            raise NotFound("The reply's conversation is gone.")
        return conversation.owner_id, conversation.agent_id

    async def _lost_reply(self, message: Message, text: str) -> FinishedReply:
        """The final state of a reply whose instance died, with all its usage rows.

        A reply that died outside a tool round died waiting on the model: that
        call gets its row, estimated from what was sent and what was written.
        """
        reply_id = message.reply_id
        assert reply_id is not None
        busy_with_tools = await self.deps.tools.store.unfinished(reply_id)
        in_flight = () if busy_with_tools else await self._lost_call(message, text)
        stored = await self.deps.ledger.calls_of(reply_id)
        user_id, agent_id = await self._owner_and_agent(message)
        return FinishedReply(
            reply_id=reply_id,
            user_id=user_id,
            conversation_id=message.conversation_id,
            agent_id=agent_id,
            text=text,
            status="interrupted",
            calls=(*stored, *in_flight),
            stored_calls=len(stored),
        )


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
