"""Closing the replies whose owner died.

Every instance sweeps: a reply whose lease has expired (its instance stopped
renewing it) is stored as ``interrupted`` with the text its log holds, its
unfinished tool calls are reported, and its log is closed. An orphan, a reply
Postgres still calls streaming while Redis no longer knows it (Redis lost its
data), is closed the same way. A claim in Redis makes sure one sweeper takes
each, and the ledger's conditional store makes a late owner's store win.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio.cluster import RedisCluster

from parley.errors import NotFound
from parley.llm.base import CallRecord, ChatMessage, ModelRef
from parley.observability import metrics
from parley.protocol import ReplyStatus, ToolResultFrame
from parley.replies.events import Event
from parley.replies.job import ReplyDeps
from parley.replies.memory import FORGET
from parley.replies.task import done_frame
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


class Sweeper:
    def __init__(
        self,
        *,
        redis: RedisClient,
        keys: Keys,
        deps: ReplyDeps,
        conversations: ConversationStore,
        running_here: Callable[[str], bool],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.deps = deps
        self.log = deps.log
        self.conversations = conversations
        self._running_here = running_here  # this instance's own replies are alive
        self._active_sets = [keys.active_replies(shard) for shard in range(SHARDS)]

    async def run(self, interval: float) -> None:
        """Sweep every ``interval`` seconds, orphans every twentieth time."""
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
            if self._running_here(reply_id) or await self.redis.exists(self.keys.lease(reply_id)):
                continue
            if await self._interrupt(reply_id):
                closed.append(reply_id)
        if include_orphans:
            for reply_uuid in await self.deps.ledger.stale_streaming(ORPHAN_AGE_SECONDS):
                reply_id = str(reply_uuid)
                orphaned = not self._running_here(reply_id) and not await self.log.exists(reply_id)
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
        if not await self.log.claim(reply_id, self.deps.owner):
            return False  # another instance is closing it
        closed = await self._close_lost(reply_id, orphan=orphan)
        if not closed:
            # Nothing to close here after all. Held, the claim would keep an
            # orphan pass from closing the reply for a minute.
            await self.log.release_claim(reply_id, self.deps.owner)
        return closed

    async def _close_lost(self, reply_id: str, *, orphan: bool) -> bool:
        """Close the claimed reply; ``False`` if there was nothing to close."""
        # The sweep works from a snapshot of the active set: a reply that ended
        # normally since then has left the set and must not be closed again.
        # (An orphan was never in it; storing it below is conditional anyway.)
        if not (orphan or await self._still_active(reply_id)):
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
