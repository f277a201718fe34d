"""The operator desk: conversations handed to a person, taken over, and handed back.

While an operator holds a conversation, the agent is paused: the
conversation has a held flag in Redis (:meth:`Keys.held`, beside its other
keys in one hash slot), which the reply log checks in the same script that
opens a reply, so no reply (and no model call, and no budget) can start.
The user's messages are stored and shown to the operator; the operator's
messages are replies of their own, written through the reply log like an
agent's (``seq``, ``resume`` on any instance, history), with the operator
as author. Postgres is the record of who holds what; the flags are
re-derived from it every ``RECONCILE_SECONDS``, so a Redis that lost its
data cannot leave the agent talking over a person. A set of the flagged
conversations (:attr:`Keys.held_conversations`) lets that reconciling find
flags Postgres no longer knows as taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any
from uuid import UUID

from parley.auth.tokens import Principal
from parley.errors import Busy, Conflict, NotFound
from parley.operators.deliveries import WebhookDeliveries
from parley.operators.events import OperationsBus
from parley.operators.store import HandoffRequest, HandoffStore
from parley.protocol import Author, DeltaFrame, HandoffState, ReplyStatus
from parley.replies.events import Event
from parley.replies.memory import FORGET
from parley.replies.service import ReplyService
from parley.replies.task import done_frame
from parley.replies.writer import ReplyWriter
from parley.rules import InputVerdict
from parley.storage.conversations import ConversationStore
from parley.storage.keys import new_reply_id
from parley.storage.ledger import FinishedReply, ReplyTotals
from parley.storage.records import Conversation, operator_author
from parley.storage.redis import RedisClient, as_text
from parley.tools.ids import HANDOFF

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 30.0
USER_REASON = "the user asked for a person"
# Operator replies' client ids live beside the user's in one namespace per conversation.
OPERATOR_CLIENT_PREFIX = "operator:"


class TakeoverDesk:
    def __init__(
        self,
        *,
        store: HandoffStore,
        conversations: ConversationStore,
        replies: ReplyService,
        deliveries: WebhookDeliveries,
        bus: OperationsBus,
    ) -> None:
        self.store = store
        self.conversations = conversations
        self.replies = replies
        self.deliveries = deliveries
        self.bus = bus
        self._redis: RedisClient = replies.redis
        self._keys = replies.keys
        self._held = replies.keys.held_conversations
        self._reconciling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reconcile()
        self._reconciling = asyncio.create_task(self._reconcile_forever(), name="takeovers")

    async def close(self) -> None:
        if self._reconciling is not None:
            self._reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciling

    # -- asking for a person -------------------------------------------------------

    async def request(self, request: HandoffRequest) -> bool:
        """Put the conversation in the queue (and tell the webhook); ``False`` if it
        was waiting already or a person is there."""
        opened = await self.store.request(request, self.deliveries.enqueue)
        if opened is None:
            return False
        self.deliveries.wake()
        await self._announce(
            request.conversation_id, "waiting", trigger=request.trigger, reason=request.reason
        )
        return True

    async def ask_for_person(
        self, user: Principal, conversation_id: str, reason: str | None = None
    ) -> HandoffState:
        """The user's own "talk to a person"; returns the conversation's handoff state."""
        conversation = await self.conversations.get(user.user_id, conversation_id)
        if conversation.handoff_state == "none":
            request = HandoffRequest(conversation.id, "user", (reason or "").strip() or USER_REASON)
            await self.request(request)
            conversation = await self.conversations.get(user.user_id, conversation.id)
        return conversation.handoff()

    async def after_reply(self, reply: FinishedReply, message_id: UUID) -> None:
        """A reply that handed the conversation over (escalation rule or tool) queues it."""
        if not reply.needs_human:
            return
        event = next((e for e in reply.events if e.action == "handoff"), None)
        trigger = "tool" if event is not None and event.rule == HANDOFF else "rule"
        reason = event.detail if event is not None and event.detail else "asked for a person"
        await self.request(
            HandoffRequest(
                reply.conversation_id,
                trigger,
                reason,
                rule=event.rule if event is not None else None,
                message_id=message_id,
            )
        )

    # -- taking over and handing back ------------------------------------------------

    async def take(self, operator: Principal, conversation_id: str) -> Conversation:
        change = await self.store.take(_uuid(conversation_id), operator)
        conversation = change.conversation
        # Held first, then the running reply stopped: a reply opening meanwhile
        # either sees the conversation held or is the one found running here.
        await self._hold({str(conversation.id)})
        if change.changed:
            running = await self.replies.log.running_reply(str(conversation.id))
            if running is not None:
                with contextlib.suppress(NotFound):  # it ended meanwhile
                    await self.replies.cancel(running, conversation.owner_id)
            # What the model reads next is rebuilt from Postgres after the release.
            await self.replies.deps.memory.forget(conversation.id)
            await self._announce(conversation.id, "taken", by=operator_author(operator.name))
        return conversation

    async def release(self, operator: Principal, conversation_id: str) -> Conversation:
        change = await self.store.release(_uuid(conversation_id), operator)
        await self._unhold({str(change.conversation.id)})
        if change.changed:
            await self.replies.deps.memory.forget(change.conversation.id)
            await self._announce(
                change.conversation.id, "released", by=operator_author(operator.name)
            )
        return change.conversation

    # -- messages while held ---------------------------------------------------------------

    async def hold(
        self,
        conversation: Conversation,
        *,
        client_id: str,
        verdict: InputVerdict,
        catalog_version: str,
    ) -> tuple[UUID, str | None]:
        """Store a user message that gets no agent reply (a person holds the conversation)."""
        message_id, reply_id = await self.store.insert_held(
            conversation.id,
            client_id=client_id,
            text=verdict.text,
            redacted=verdict.redacted,
            events=verdict.events,
            catalog_version=catalog_version,
        )
        if reply_id is None:
            await self._publish(
                {
                    "kind": "message",
                    "conversation_id": str(conversation.id),
                    "message_id": str(message_id),
                }
            )
        return message_id, reply_id

    async def post(
        self, operator: Principal, conversation_id: str, *, text: str, client_id: str
    ) -> dict[str, str]:
        """An operator's message to the user: a complete reply of its own, authored by them."""
        conversation = await self.conversations.find(_uuid(conversation_id))
        if conversation is None:
            raise NotFound("No such conversation.")
        if conversation.taken_by != operator.user_id:
            raise Conflict("Take the conversation over before writing in it.")
        key = OPERATOR_CLIENT_PREFIX + client_id
        reply_id = new_reply_id(conversation.id)
        opened = await self.replies.open(
            reply_id=reply_id,
            user_id=conversation.owner_id,  # the user follows and resumes it as any reply
            conversation_id=str(conversation.id),
            client_id=key,
            agent_id=conversation.agent_id,
            by_operator=True,
        )
        if not opened.opened:
            return await self._earlier(conversation, key)
        try:
            message_id = await self.store.insert_operator_reply(
                conversation.id, UUID(reply_id), key, operator
            )
        except BaseException:
            await self.replies.abandon(reply_id, str(conversation.id), key)
            raise
        if message_id is None:  # sent before, longer ago than Redis remembers
            await self.replies.abandon(reply_id, str(conversation.id), key)
            return await self._earlier(conversation, key)
        author = operator_author(operator.name)
        await self._write(conversation, reply_id, message_id, text, author)
        await self._publish(
            {
                "kind": "reply",
                "conversation_id": str(conversation.id),
                "reply_id": reply_id,
                "author": author,
            }
        )
        return {"message_id": str(message_id), "reply_id": reply_id}

    async def _earlier(self, conversation: Conversation, key: str) -> dict[str, str]:
        earlier = await self.store.operator_reply(conversation.id, key)
        if earlier is None:
            raise Busy("A reply is still being stopped in this conversation; send again.")
        return earlier

    async def _write(
        self,
        conversation: Conversation,
        reply_id: str,
        message_id: UUID,
        text: str,
        author: Author,
    ) -> None:
        """The whole text as one delta, stored, then ``done``: what every client path reads."""
        deps = self.replies.deps
        feed = deps.feeds.open(reply_id, conversation.owner_id)
        try:
            writer = ReplyWriter(deps.log, feed, reply_id)
            writer.numbered(DeltaFrame(reply_id=reply_id, seq=0, text=text, author=author))
            await writer.drain()
            reply = FinishedReply(
                reply_id=UUID(reply_id),
                user_id=conversation.owner_id,
                conversation_id=conversation.id,
                agent_id=conversation.agent_id,
                text=text,
                status="complete",
            )
            await deps.ledger.finish(reply)
            frame = done_frame(reply_id, message_id, ReplyStatus.COMPLETE, ReplyTotals.of(()))
            done = Event.of(replace(frame, author=author), at=writer.seq)
            # Held: the user's messages meanwhile are not in the cached history either.
            await deps.log.close(reply_id, str(conversation.id), done, history=FORGET)
            feed.publish([done])
        finally:
            deps.feeds.close(reply_id)

    # -- keeping Redis honest ------------------------------------------------------------

    async def reconcile(self) -> None:
        """Make the held flags match Postgres, without undoing a take or release in flight.

        Redis is read before Postgres: a flagged conversation that Postgres
        knows as not taken was released (its removal is only repeated); one
        Postgres does not know is left alone (another deployment may share this
        Redis). One taken but without its flag is flagged, then checked again:
        a release that committed meanwhile removed the flag before we set it
        again, so it is removed once more.
        """
        held = {as_text(member) for member in await self._redis.smembers(self._held)}
        taken = await self.store.taken()
        if stale := await self.store.released(held - taken):
            await self._unhold(stale)
        if missing := taken - await self._flagged(taken):
            log.warning("re-holding %d conversation(s) Redis had forgotten", len(missing))
            await self._hold(missing)
            if released := missing - await self.store.taken():
                await self._unhold(released)

    async def _hold(self, conversation_ids: set[str]) -> None:
        """Flag the conversations held; the set of flagged ones first, so that
        reconciling finds every flag."""
        await self._redis.sadd(self._held, *conversation_ids)
        for conversation_id in conversation_ids:
            await self._redis.set(self._keys.held(conversation_id), 1)

    async def _unhold(self, conversation_ids: set[str]) -> None:
        """Remove the flags, then the conversations from the set of flagged ones."""
        await self._redis.delete(*(self._keys.held(c) for c in conversation_ids))
        await self._redis.srem(self._held, *conversation_ids)

    async def _flagged(self, conversation_ids: set[str]) -> set[str]:
        """Those of the conversations whose held flag is set."""
        if not conversation_ids:
            return set()
        ordered = list(conversation_ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id in ordered:
                pipe.exists(self._keys.held(conversation_id))
            found = await pipe.execute()
        return {c for c, exists in zip(ordered, found, strict=True) if exists}

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("could not reconcile held conversations: %s", error)

    # ------------------------------------------------------------------------------------

    async def _announce(self, conversation_id: UUID, state: str, **extra: Any) -> None:
        await self._publish(
            {"kind": "handoff", "conversation_id": str(conversation_id), "state": state, **extra}
        )

    async def _publish(self, event: dict[str, Any]) -> None:
        try:
            await self.bus.publish(event)
        except Exception as error:  # stored already: watchers catch up when they re-read
            log.warning("could not publish %s event: %s", event.get("kind"), error)


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound("No such conversation.") from None
