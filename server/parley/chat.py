"""What a client can do, independent of how it is connected.

The WebSocket handler and the REST endpoints both call :class:`ChatService`;
it resolves agents, owns the order of operations when a message arrives
(rules, busy check, budget, Postgres, then the reply task) and builds the
views clients see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Protocol, TypeVar
from uuid import UUID

from parley.auth.tokens import Principal
from parley.catalog import Agent, CatalogStore
from parley.catalog.catalog import composed_id
from parley.errors import Busy, Forbidden, NotFound
from parley.knowledge.prompt import with_passages
from parley.knowledge.service import Asker, Knowledge, Retrieval
from parley.knowledge.store import Hit
from parley.lane import Lane
from parley.llm.base import ChatMessage, ModelRef
from parley.llm.context import fit_messages
from parley.llm.router import LLMRouter
from parley.message_limits import MessageLimits
from parley.observability import context
from parley.observability.tracing import NO_TRACING, Tracing
from parley.protocol import AcceptedFrame, ActiveReply, AgentInfo, SessionFrame
from parley.replies.job import ReplyJob
from parley.replies.log import ConversationHeld
from parley.replies.memory import ConversationMemory
from parley.replies.service import ReplyService
from parley.rules.events import InputVerdict
from parley.rules.ruleset import RuleSet
from parley.sessions import Session, SessionStore
from parley.storage.budget import TokenBudget
from parley.storage.conversations import ConversationStore, NewTurn
from parley.storage.keys import new_reply_id
from parley.storage.records import Conversation, Message
from parley.tools.base import Tool
from parley.tools.registry import ToolRegistry

# Longer texts are checked in a thread (see _off_the_loop).
LONG_TEXT_CHARS = 512
_EarlySearch = tuple[str, asyncio.Task[list[Hit]]]  # a query and its search under way
_In = TypeVar("_In")
_Out = TypeVar("_Out")


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
class Accepted:
    client_id: str
    message_id: UUID
    reply_id: str | None  # None: a person holds the conversation, the agent does not reply
    text: str  # the message as stored: input redactions applied
    redacted: bool
    duplicate: bool = False

    def frame(self) -> AcceptedFrame:
        return AcceptedFrame(
            client_id=self.client_id,
            message_id=str(self.message_id),
            reply_id=self.reply_id,
            text=self.text,
            redacted=self.redacted,
        )


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


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    conversation: Conversation
    agent: Agent
    max_message_chars: int  # the agent's effective limit
    history: list[Message]
    active_reply: ActiveReply | None

    def frame(self) -> SessionFrame:
        agent: AgentInfo = {
            "id": self.agent.id,
            "name": self.agent.name,
            "personality": self.agent.personality.id,
            "rules": self.agent.rules.id,
            "max_message_chars": self.max_message_chars,
        }
        return SessionFrame(
            session_id=self.session.id,
            conversation_id=str(self.conversation.id),
            agent=agent,
            history=[message.public() for message in self.history],
            active_reply=self.active_reply,
            handoff=self.conversation.handoff(),
        )


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
        self.router = router
        self.budget = budget
        self.tools = tools
        self.default_model = default_model
        self.limits = limits
        self.tracing = tracing
        self.held = held
        self.knowledge = knowledge
        # Accepts (start and send) take a slot: a burst of them queues (parley/lane.py).
        self.admission = admission or Lane(0)

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
        if user.guest_agent is not None:
            if personality or rules or agent_id != user.guest_agent:
                raise Forbidden("A guest may only chat with the agent its token names.")
            self.catalog.current.guest_agent(agent_id)  # it may have stopped taking guests
        if agent_id is None and personality and rules:
            agent_id = composed_id(personality, rules)
        agent = self.resolve_agent(agent_id or "")
        conversation = await self.conversations.create_for(
            user.user_id, user.name, agent_id or agent.id, agent.personality.id, agent.rules.id
        )
        return conversation, agent

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
                conversation, agent = await self.new_conversation(
                    user, agent_id=agent_id, personality=personality, rules=rules
                )
                session = await self.sessions.create(user.user_id, str(conversation.id))
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
                )
            span.set("parley.reply.id", accepted.reply_id or "")
            span.set("parley.message.duplicate", accepted.duplicate)
            return accepted

    async def _send(
        self,
        user: Principal,
        conversation: Conversation,
        *,
        client_id: str,
        text: str,
        given: Sequence[ChatMessage] | None,
        can_confirm: bool,
    ) -> Accepted:
        agent = self.resolve_agent(conversation.agent_id)
        if user.guest_agent is not None:
            agent = agent.for_guest()  # the guests' own daily budget
        self.limits.check(text, agent)
        verdict = await self._check_input(agent, text)
        reply_id = new_reply_id(conversation.id)  # in the conversation's shard: storage/keys.py
        turn = _Turn(user, conversation, agent, client_id, reply_id, given, can_confirm)
        # The history is only needed if the reply opens, but reading it (and
        # searching the knowledge) alongside saves round trips on the way to
        # the first token.
        early = self._search_early(turn, verdict)
        try:
            opened, history = await asyncio.gather(
                self._open(turn), self._history(turn), return_exceptions=True
            )
            if isinstance(opened, ConversationHeld):
                return await self._hold(conversation, agent, client_id, verdict)
            if isinstance(opened, BaseException):
                raise opened
            if not opened:  # busy, unless this is a resend of the running reply's message
                return await self._earlier(conversation.id, client_id)
            if isinstance(history, BaseException):
                await self.replies.abandon(turn.reply_id, str(conversation.id), client_id)
                raise history
            job = await self._job(turn, verdict, history, early)
            return await self._store_turn(job, client_id, verdict)
        finally:
            if early is not None:
                early[1].cancel()  # unused (or done: then this does nothing)

    def _search_early(self, turn: _Turn, verdict: InputVerdict) -> _EarlySearch | None:
        """The turn's first knowledge search, started before the reply opens.

        It used to wait for the history and then be one more Postgres round
        trip before the upstream request (about 0.8 ms of the first token).
        If the reply does not open it is cancelled; if screening the history
        changes the message, :meth:`Knowledge.retrieve` searches afresh.
        """
        agent = turn.agent
        if self.knowledge is None or not agent.knowledge or verdict.blocked_reply is not None:
            return None
        asker = Asker(turn.user.user_id, turn.conversation.id, UUID(turn.reply_id))
        return self.knowledge.search_early(agent.knowledge, verdict.text, asker)

    async def _open(self, turn: _Turn) -> bool:
        return await self.replies.open(
            reply_id=turn.reply_id,
            user_id=turn.user.user_id,
            conversation_id=str(turn.conversation.id),
            client_id=turn.client_id,
            agent_id=turn.agent.id,
        )

    async def _history(self, turn: _Turn) -> list[ChatMessage]:
        """The conversation so far: stored, or the caller's own (screened)."""
        if turn.given is None:
            return await self.memory.recent(turn.conversation.id)
        return await self._caller_history(turn.agent.rules, turn.given)

    async def _job(
        self,
        turn: _Turn,
        verdict: InputVerdict,
        history: list[ChatMessage],
        early: _EarlySearch | None = None,
    ) -> ReplyJob:
        """What the opened reply runs with; it is abandoned if that cannot be made."""
        if verdict.blocked_reply is None:
            history, verdict = await _screen_history(turn.agent.rules, history, verdict)
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
        )
        try:
            if verdict.blocked_reply is None:
                job = await self._prepare(
                    turn.user, turn.agent, history, job, can_confirm=turn.can_confirm, early=early
                )
        except BaseException:
            await self._abandon(job, turn.client_id)
            raise
        return job

    async def _check_input(self, agent: Agent, text: str) -> InputVerdict:
        with self.tracing.span("parley.rules", {"parley.rules.id": agent.rules.id}) as span:
            verdict = await _off_the_loop(len(text), agent.rules.check_input, text)
            span.set("parley.rules.actions", [event.action for event in verdict.events])
        return verdict

    async def _store_turn(self, job: ReplyJob, client_id: str, verdict: InputVerdict) -> Accepted:
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

    async def _prepare(
        self,
        user: Principal,
        agent: Agent,
        history: list[ChatMessage],
        job: ReplyJob,
        *,
        can_confirm: bool = True,
        early: _EarlySearch | None = None,
    ) -> ReplyJob:
        """Fit the prompt to the model's window and reserve the token budget."""
        models = self._models(agent)
        system = agent.system_prompt(user_name=user.name, today=datetime.now(UTC).date())
        retrieval = await self._retrieve(agent, history, job, models[0], early)
        if retrieval is not None:
            system = with_passages(system, retrieval.passages)
            job = replace(job, sources=retrieval.sources)
        fitted = fit_messages(
            system,
            history,
            job.user_text,
            self.router.counter.for_model(models[0]),
            self.router.context_window(models[0]),
            agent.max_reply_tokens,
        )
        with self.tracing.span("parley.budget"):
            reservation = await self.budget.reserve(
                user.user_id,
                agent.rules.id,
                fitted.prompt_tokens + agent.max_reply_tokens,
                agent.daily_token_budget,
            )
        return replace(
            job,
            messages=fitted.messages,
            models=models,
            max_tokens=agent.max_reply_tokens,
            temperature=agent.temperature,
            reservation=reservation,
            tools=_offered(self.tools.select(agent.tools), can_confirm=can_confirm),
            max_tool_rounds=agent.rules.limits.max_tool_rounds,
        )

    async def _retrieve(
        self,
        agent: Agent,
        history: list[ChatMessage],
        job: ReplyJob,
        model: ModelRef,
        early: _EarlySearch | None = None,
    ) -> Retrieval | None:
        """The agent's passages for this turn, within their share of the model's window."""
        if self.knowledge is None or not agent.knowledge:
            return None
        tokens = self.router.counter.for_model(model)
        with self.tracing.span("parley.knowledge", {"parley.knowledge.mode": self.knowledge.mode}):
            return await self.knowledge.retrieve(
                collections=agent.knowledge,
                history=history,
                newest=job.user_text,
                budget_tokens=self.knowledge.budget(
                    self.router.context_window(model), agent.max_reply_tokens
                ),
                count=tokens.count,
                conversation_id=str(job.conversation_id),
                asker=Asker(job.user_id, job.conversation_id, UUID(job.reply_id)),
                early=early,
            )

    async def _caller_history(
        self, rules: RuleSet, given: Sequence[ChatMessage]
    ) -> list[ChatMessage]:
        """A caller's history, as deep as a stored one is read, screened like one."""
        recent = _from_a_user_turn(given[-self.memory.size :])
        size = sum(len(message.content) for message in recent)
        return await _off_the_loop(size, partial(_unblocked, rules), recent)

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

    def _models(self, agent: Agent) -> tuple[ModelRef, ...]:
        """The agent's models this server can reach, else the default model."""
        usable = tuple(m for m in agent.models if self.router.has_provider(m.provider))
        return usable or (self.default_model,)

    async def _abandon(self, job: ReplyJob, client_id: str) -> None:
        await self.replies.abandon(
            job.reply_id, str(job.conversation_id), client_id, job.reservation
        )


async def _off_the_loop(size: int, check: Callable[[_In], _Out], argument: _In) -> _Out:
    """Run a rules check; a long text's in a thread, so running streams keep flowing
    while it is scanned (a crafted message can take libphonenumber 100+ ms)."""
    if size <= LONG_TEXT_CHARS:
        return check(argument)
    return await asyncio.to_thread(check, argument)


async def _screen_history(
    rules: RuleSet, history: list[ChatMessage], verdict: InputVerdict
) -> tuple[list[ChatMessage], InputVerdict]:
    """Redact what only the user's turns together reveal, e.g. a card number split
    across two messages: the history going upstream and the new message (as stored)."""
    turns = [index for index, message in enumerate(history) if message.role == "user"]
    if not turns:
        # The new message alone: check_input has just screened it with the same
        # redaction rules, and there is no other turn for it to combine with.
        # (A conversation's first message skipped about 0.1 ms of scanning.)
        return history, verdict
    texts = [history[index].content for index in turns] + [verdict.text]
    screened, events = await _off_the_loop(sum(map(len, texts)), rules.redact_history, texts)
    if not events:
        return history, verdict
    history = list(history)
    for index, text in zip(turns, screened, strict=False):
        history[index] = replace(history[index], content=text)
    verdict = replace(
        verdict,
        text=screened[-1],
        events=(*verdict.events, *events),
        redacted=verdict.redacted or screened[-1] != verdict.text,
    )
    return history, verdict


def _unblocked(rules: RuleSet, history: Sequence[ChatMessage]) -> list[ChatMessage]:
    """A caller's history without the turns a block rule stops.

    A stored conversation keeps a blocked message and the rule's reply to it
    out of every later prompt; a history the caller sends was never checked,
    and would otherwise be a way round a block. So each user turn is checked
    as if it were new, and one that would be blocked goes with what answers it.
    """
    kept: list[ChatMessage] = []
    blocked = False
    for message in history:
        if message.role == "user":
            blocked = rules.check_input(message.content).blocked
        if not blocked:
            kept.append(message)
    return kept


def _from_a_user_turn(history: Sequence[ChatMessage]) -> Sequence[ChatMessage]:
    """``history`` from its first user turn: a reply without its question confuses models."""
    start = next((i for i, message in enumerate(history) if message.role == "user"), len(history))
    return history[start:]


def _offered(tools: dict[str, Tool], *, can_confirm: bool) -> dict[str, Tool]:
    """The tools to offer the model: a tool that waits for a person's approval only
    when someone can give it."""
    if can_confirm:
        return tools
    return {name: tool for name, tool in tools.items() if not tool.confirm}
