"""What a client can do, independent of how it is connected.

The WebSocket handler and the REST endpoints both call :class:`ChatService`;
it resolves agents, owns the order of operations when a message arrives
(rules, busy check, budget, Postgres, then the reply task) and answers with
the views of :mod:`parley.views`. What the reply is asked with (the screened
history, the passages, the fitted prompt, the reserved budget, the tools) is
:mod:`parley.turns`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from parley.auth.tokens import Principal
from parley.catalog import Agent, CatalogStore
from parley.catalog.catalog import composed_id
from parley.errors import Busy, Forbidden, NotFound
from parley.knowledge.service import Asker, Knowledge
from parley.lane import Lane
from parley.llm.base import ChatMessage, ModelRef
from parley.llm.router import LLMRouter
from parley.message_limits import MessageLimits
from parley.observability import context
from parley.observability.tracing import NO_TRACING, Tracing
from parley.replies.job import ReplyJob
from parley.replies.log import ConversationHeld, Opening
from parley.replies.memory import ConversationMemory
from parley.replies.service import ReplyService
from parley.rules.events import InputVerdict
from parley.sessions import SessionStore
from parley.storage.budget import TokenBudget
from parley.storage.conversations import ConversationStore, NewConversation, NewTurn
from parley.storage.keys import new_reply_id
from parley.storage.records import Conversation
from parley.tools.registry import ToolRegistry
from parley.turns import EarlySearch, TurnPreparer, off_the_loop, screen_history
from parley.views import Accepted, SessionView


class HeldMessages(Protocol):
    """Where a user's message goes while a person holds the conversation (no reply)."""

    async def hold(
        self,
        conversation: Conversation,
        *,
        client_id: str,
        verdict: InputVerdict,
        catalog_version: str,
    ) -> tuple[UUID, str | None]: ...


@dataclass(frozen=True, slots=True)
class _Turn:
    """One incoming message: who sends it, where, and how its reply may run."""

    user: Principal
    conversation: Conversation
    agent: Agent
    client_id: str
    reply_id: str
    given: Sequence[ChatMessage] | None  # a caller's own history (compatible APIs)
    can_confirm: bool  # someone can approve a tool call during the reply
    creates: NewConversation | None = None  # stored with the turn: not there before


def _stored_id(turn: _Turn) -> UUID | None:
    """The conversation's id for rows written before the turn is stored (a search's
    accounting), if the conversation is stored already."""
    return turn.conversation.id if turn.creates is None else None


class ChatService:
    def __init__(
        self,
        *,
        catalog: CatalogStore,
        conversations: ConversationStore,
        sessions: SessionStore,
        memory: ConversationMemory,
        replies: ReplyService,
        router: LLMRouter,
        budget: TokenBudget,
        tools: ToolRegistry,
        default_model: ModelRef,
        limits: MessageLimits,
        tracing: Tracing = NO_TRACING,
        held: HeldMessages | None = None,
        knowledge: Knowledge | None = None,
        admission: Lane | None = None,
    ) -> None:
        self.catalog = catalog
        self.conversations = conversations
        self.sessions = sessions
        self.memory = memory
        self.replies = replies
        self.limits = limits
        self.tracing = tracing
        self.held = held
        # Accepts (start and send) take a slot: a burst of them queues (parley/lane.py).
        self.admission = admission or Lane(0)
        self.turns = TurnPreparer(
            router=router,
            budget=budget,
            tools=tools,
            default_model=default_model,
            tracing=tracing,
            knowledge=knowledge,
        )

    # -- conversations and sessions ------------------------------------------

    def resolve_agent(self, agent_id: str) -> Agent:
        return self.catalog.current.resolve(agent_id)

    async def new_conversation(
        self,
        user: Principal,
        *,
        agent_id: str | None = None,
        personality: str | None = None,
        rules: str | None = None,
    ) -> tuple[Conversation, Agent]:
        draft, agent = self._draft(user, agent_id, personality, rules)
        return await self.conversations.store(draft, user.name), agent

    def _draft(
        self, user: Principal, agent_id: str | None, personality: str | None, rules: str | None
    ) -> tuple[Conversation, Agent]:
        """A new conversation, not stored yet, once the user may have it."""
        if user.guest_agent is not None:
            if personality or rules or agent_id != user.guest_agent:
                raise Forbidden("A guest may only chat with the agent its token names.")
            self.catalog.current.guest_agent(agent_id)  # it may have stopped taking guests
        if agent_id is None and personality and rules:
            agent_id = composed_id(personality, rules)
        agent = self.resolve_agent(agent_id or "")
        draft = self.conversations.draft(
            user.user_id, agent_id or agent.id, agent.personality.id, agent.rules.id
        )
        return draft, agent

    async def start(
        self,
        user: Principal,
        *,
        agent_id: str | None = None,
        conversation_id: str | None = None,
        session_id: str | None = None,
        personality: str | None = None,
        rules: str | None = None,
    ) -> SessionView:
        """Open a new conversation, continue one, or reattach to a session."""
        async with self.admission.slot():
            if session_id is not None:
                session = await self.sessions.get(session_id, user.user_id)
                conversation = await self.conversations.get(user.user_id, session.conversation_id)
                agent = self._agent_of(user, conversation)
            elif conversation_id is not None:
                conversation = await self.conversations.get(user.user_id, conversation_id)
                agent = self._agent_of(user, conversation)
                session = await self.sessions.create(user.user_id, str(conversation.id))
            else:
                draft, agent = self._draft(user, agent_id, personality, rules)
                # Stored while its session is written and its history cached as
                # empty (its first message's reply asks Postgres for nothing): the
                # id is the draft's, so none of the three waits for another. Should
                # the insert fail, the other two name an id nobody has, and expire.
                conversation, session, _ = await asyncio.gather(
                    self.conversations.store(draft, user.name),
                    self.sessions.create(user.user_id, str(draft.id)),
                    self.memory.started(draft.id),
                )
                # Just made, under an id nobody else has seen yet: it has no messages
                # and no reply. Reading them was four more round trips (three to
                # Postgres, one to Redis) before a new chat's first message.
                return SessionView(
                    session, conversation, agent, self.limits.for_agent(agent), [], None
                )
            history = await self.conversations.messages(conversation.id)
            return SessionView(
                session,
                conversation,
                agent,
                self.limits.for_agent(agent),
                history,
                await self.replies.running_in(str(conversation.id)),
            )

    def _agent_of(self, user: Principal, conversation: Conversation) -> Agent:
        """The conversation's agent; a guest's token must name it, and it must take guests."""
        if user.guest_agent is not None:
            if conversation.agent_id != user.guest_agent:
                raise NotFound("No such conversation.")
            return self.catalog.current.guest_agent(conversation.agent_id)
        return self.resolve_agent(conversation.agent_id)

    # -- messages --------------------------------------------------------------

    async def send(
        self,
        user: Principal,
        conversation: Conversation,
        *,
        client_id: str,
        text: str,
        history: Sequence[ChatMessage] | None = None,
        can_confirm: bool = True,
        creates: NewConversation | None = None,
    ) -> Accepted:
        """Accept a user message and start its reply.

        The same ``client_id`` again returns the first acceptance and starts
        nothing. Order matters: rules first (so blocked or redacted text is
        what we store), then the busy check, the budget, and last the turn's
        insert with the reply's upstream request already on its way (the
        reply writes nothing until the insert has committed).
        Resends are recognised in Redis when the reply is opened (one round
        trip either way), and by Postgres's unique (conversation, client_id)
        for older ones.

        ``history`` is the conversation so far as a caller that keeps it itself
        sends it (the OpenAI- and Anthropic-compatible APIs): it goes upstream
        instead of the stored one, screened as if it had been stored (see
        :func:`_unblocked`). ``can_confirm=False`` says nobody can approve a
        tool call for this turn, so tools that need approval are not offered.
        ``creates`` stores the conversation with the turn (:meth:`send_first`).
        """
        conversation_id = str(conversation.id)
        with (
            context.bound(conversation_id=conversation_id),
            self.tracing.message(conversation.agent_id, conversation_id) as span,
        ):
            async with self.admission.slot():
                accepted = await self._send(
                    user,
                    conversation,
                    client_id=client_id,
                    text=text,
                    given=history,
                    can_confirm=can_confirm,
                    creates=creates,
                )
            span.set("parley.reply.id", accepted.reply_id or "")
            span.set("parley.message.duplicate", accepted.duplicate)
            return accepted

    async def send_first(
        self,
        user: Principal,
        agent_id: str,
        *,
        client_id: str,
        text: str,
        history: Sequence[ChatMessage] = (),
        can_confirm: bool = True,
    ) -> tuple[Conversation, Accepted]:
        """Start a conversation with ``agent_id`` by sending its first message.

        The conversation is stored with the turn, in one statement: one round
        trip less on the way to the first token than :meth:`new_conversation`
        then :meth:`send`, and no empty conversation is left behind when the
        message is refused. ``history`` is what came before, if the caller
        keeps it (see :meth:`send`); none otherwise.
        """
        conversation, _ = self._draft(user, agent_id, None, None)
        accepted = await self.send(
            user,
            conversation,
            client_id=client_id,
            text=text,
            history=history,
            can_confirm=can_confirm,
            creates=NewConversation(conversation, user.name),
        )
        return conversation, accepted

    async def _send(
        self,
        user: Principal,
        conversation: Conversation,
        *,
        client_id: str,
        text: str,
        given: Sequence[ChatMessage] | None,
        can_confirm: bool,
        creates: NewConversation | None,
    ) -> Accepted:
        agent = self.resolve_agent(conversation.agent_id)
        if user.guest_agent is not None:
            agent = agent.for_guest()  # the guests' own daily budget
        self.limits.check(text, agent)
        verdict = await self._check_input(agent, text)
        reply_id = new_reply_id(conversation.id)  # in the conversation's shard: storage/keys.py
        turn = _Turn(user, conversation, agent, client_id, reply_id, given, can_confirm, creates)
        # The knowledge is only searched for if the reply opens, but searching
        # alongside the opening (which brings the cached history) saves time on
        # the way to the first token.
        asker = Asker(user.user_id, _stored_id(turn), UUID(reply_id))
        early = self.turns.search_early(agent, verdict, asker)
        try:
            try:
                opening = await self._open(turn)
            except ConversationHeld:
                return await self._hold(conversation, agent, client_id, verdict)
            if not opening.opened:  # busy, unless this is a resend of the running reply's message
                return await self._earlier(conversation.id, client_id)
            try:
                history = await self._history(turn, opening)
            except BaseException:
                await self.replies.abandon(turn.reply_id, str(conversation.id), client_id)
                raise
            job = await self._job(turn, verdict, history, early)
            return await self._store_turn(job, client_id, verdict, creates)
        finally:
            if early is not None:
                early[1].cancel()  # unused (or done: then this does nothing)

    async def _open(self, turn: _Turn) -> Opening:
        return await self.replies.open(
            reply_id=turn.reply_id,
            user_id=turn.user.user_id,
            conversation_id=str(turn.conversation.id),
            client_id=turn.client_id,
            agent_id=turn.agent.id,
            read_history=turn.given is None,
        )

    async def _history(self, turn: _Turn, opening: Opening) -> list[ChatMessage]:
        """The conversation so far: stored (cached, else read from Postgres), or
        the caller's own (screened)."""
        if turn.given is None:
            return await self.memory.recent(turn.conversation.id, opening.cached_history)
        return await self.turns.caller_history(turn.agent.rules, turn.given, self.memory.size)

    async def _job(
        self,
        turn: _Turn,
        verdict: InputVerdict,
        history: list[ChatMessage],
        early: EarlySearch | None = None,
    ) -> ReplyJob:
        """What the opened reply runs with; it is abandoned if that cannot be made."""
        if verdict.blocked_reply is None:
            history, verdict = await screen_history(turn.agent.rules, history, verdict)
        stored_history = turn.given is None
        job = ReplyJob(
            reply_id=turn.reply_id,
            user_id=turn.user.user_id,
            conversation_id=turn.conversation.id,
            agent=turn.agent,
            user_text=verdict.text,
            input_events=verdict.events,
            blocked_reply=verdict.blocked_reply,
            handoff=verdict.handoff,
            first_turn=not history if stored_history else turn.conversation.message_count == 0,
            conversation_stored=turn.creates is None,
        )
        try:
            if verdict.blocked_reply is None:
                job = await self.turns.prepare(
                    turn.user, turn.agent, history, job, can_confirm=turn.can_confirm, early=early
                )
        except BaseException:
            await self._abandon(job, turn.client_id)
            raise
        return job

    async def _check_input(self, agent: Agent, text: str) -> InputVerdict:
        with self.tracing.span("parley.rules", {"parley.rules.id": agent.rules.id}) as span:
            verdict = await off_the_loop(len(text), agent.rules.check_input, text)
            span.set("parley.rules.actions", [event.action for event in verdict.events])
        return verdict

    async def _store_turn(
        self,
        job: ReplyJob,
        client_id: str,
        verdict: InputVerdict,
        creates: NewConversation | None,
    ) -> Accepted:
        """Store the user message and the reply's placeholder while the reply's
        upstream request is already on its way; the reply writes nothing before."""
        pending = self.replies.start(job)
        turn = NewTurn(
            conversation_id=job.conversation_id,
            client_id=client_id,
            text=verdict.text,
            user_status="blocked" if verdict.blocked_reply is not None else "accepted",
            redacted=verdict.redacted,
            reply_id=UUID(job.reply_id),
            catalog_version=job.agent.catalog_version,
            model=str(job.models[0]) if job.models else None,
            sources=job.sources,
            creates=creates,
        )
        try:
            with self.tracing.storage("insert_turn"):
                ids = await self.conversations.insert_turn(turn)
        except BaseException:
            pending.dropped()
            await self._abandon(job, client_id)
            raise
        if ids is None:  # this client_id was used before: a resend
            pending.dropped()
            await self._abandon(job, client_id)
            return await self._earlier(job.conversation_id, client_id)
        pending.stored()
        return Accepted(
            client_id, ids.message_id, str(ids.reply_id), verdict.text, verdict.redacted
        )

    async def _hold(
        self, conversation: Conversation, agent: Agent, client_id: str, verdict: InputVerdict
    ) -> Accepted:
        """A person holds the conversation: the message is stored for them, and the
        agent neither replies nor reserves budget."""
        if self.held is None:
            raise Busy("A person has taken this conversation over.")
        message_id, reply_id = await self.held.hold(
            conversation,
            client_id=client_id,
            verdict=verdict,
            catalog_version=agent.catalog_version,
        )
        return Accepted(client_id, message_id, reply_id, verdict.text, verdict.redacted)

    async def _earlier(self, conversation_id: UUID, client_id: str) -> Accepted:
        """The first acceptance of a resent ``client_id``; else the conversation is busy."""
        earlier = await self.conversations.find_turn(conversation_id, client_id)
        if earlier is None:
            raise Busy()
        ids = earlier.ids
        return Accepted(
            client_id,
            ids.message_id,
            str(ids.reply_id),
            earlier.text,
            earlier.redacted,
            duplicate=True,
        )

    async def _abandon(self, job: ReplyJob, client_id: str) -> None:
        await self.replies.abandon(
            job.reply_id, str(job.conversation_id), client_id, job.reservation
        )
