"""What a client can do, independent of how it is connected.

The WebSocket handler and the REST endpoints both call :class:`ChatService`;
it resolves agents, owns the order of operations when a message arrives
(rules, busy check, budget, Postgres, then the reply task) and builds the
views clients see.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from uuid import UUID

from parley.auth.tokens import Principal
from parley.catalog import Agent, CatalogStore
from parley.errors import Busy
from parley.knowledge.prompt import with_passages
from parley.knowledge.service import Asker, Knowledge, Retrieval
from parley.llm.base import ChatMessage, ModelRef
from parley.llm.context import fit_messages
from parley.llm.router import LLMRouter
from parley.observability import context
from parley.observability.tracing import NO_TRACING, Tracing
from parley.replies.job import ReplyJob
from parley.replies.log import ConversationHeld, ReplyLog
from parley.replies.memory import ConversationMemory
from parley.replies.service import ReplyService
from parley.rules.budget import TokenBudget
from parley.rules.events import InputVerdict
from parley.rules.ruleset import RuleSet
from parley.sessions import Session, SessionStore
from parley.storage.conversations import ConversationStore, NewTurn, TurnIds
from parley.storage.records import Conversation, Message
from parley.tools.base import Tool
from parley.tools.registry import ToolRegistry

# A composed agent (any allowed personality + rules pair) is stored under
# this id so it can be resolved again when the conversation continues.
COMPOSED_SEPARATOR = "+"
# Longer texts are checked in a thread (see _off_the_loop).
LONG_TEXT_CHARS = 512
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
    duplicate: bool = False

    def frame(self) -> dict[str, Any]:
        return {
            "type": "accepted",
            "client_id": self.client_id,
            "message_id": str(self.message_id),
            "reply_id": self.reply_id,
        }


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    conversation: Conversation
    agent: Agent
    history: list[Message]
    active_reply: dict[str, Any] | None

    def frame(self) -> dict[str, Any]:
        return {
            "type": "session",
            "session_id": self.session.id,
            "conversation_id": str(self.conversation.id),
            "agent": {**self.agent.summary(), "name": self.agent.name},
            "history": [message.public() for message in self.history],
            "active_reply": self.active_reply,
            "handoff": self.conversation.handoff(),
        }


class ChatService:
    def __init__(
        self,
        *,
        catalog: CatalogStore,
        conversations: ConversationStore,
        sessions: SessionStore,
        memory: ConversationMemory,
        replies: ReplyService,
        reply_log: ReplyLog,
        router: LLMRouter,
        budget: TokenBudget,
        tools: ToolRegistry,
        default_model: ModelRef,
        tracing: Tracing = NO_TRACING,
        held: HeldMessages | None = None,
        knowledge: Knowledge | None = None,
    ) -> None:
        self.catalog = catalog
        self.conversations = conversations
        self.sessions = sessions
        self.memory = memory
        self.replies = replies
        self.reply_log = reply_log
        self.router = router
        self.budget = budget
        self.tools = tools
        self.default_model = default_model
        self.tracing = tracing
        self.held = held
        self.knowledge = knowledge

    # -- conversations and sessions ------------------------------------------

    def resolve_agent(self, agent_id: str) -> Agent:
        catalog = self.catalog.current
        personality, sep, rules = agent_id.partition(COMPOSED_SEPARATOR)
        if sep:
            return catalog.compose(personality, rules)
        return catalog.agent(agent_id)

    async def new_conversation(
        self,
        user: Principal,
        *,
        agent_id: str | None = None,
        personality: str | None = None,
        rules: str | None = None,
    ) -> tuple[Conversation, Agent]:
        if agent_id is None and personality and rules:
            agent_id = f"{personality}{COMPOSED_SEPARATOR}{rules}"
        agent = self.resolve_agent(agent_id or "")
        await self.conversations.ensure_user(user.user_id, user.name)
        conversation = await self.conversations.create(
            user.user_id, agent_id or agent.id, agent.personality.id, agent.rules.id
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
        if session_id is not None:
            session = await self.sessions.get(session_id, user.user_id)
            conversation = await self.conversations.get(user.user_id, session.conversation_id)
            agent = self.resolve_agent(conversation.agent_id)
        elif conversation_id is not None:
            conversation = await self.conversations.get(user.user_id, conversation_id)
            agent = self.resolve_agent(conversation.agent_id)
            session = await self.sessions.create(user.user_id, str(conversation.id))
        else:
            conversation, agent = await self.new_conversation(
                user, agent_id=agent_id, personality=personality, rules=rules
            )
            session = await self.sessions.create(user.user_id, str(conversation.id))
        history = await self.conversations.messages(conversation.id)
        return SessionView(session, conversation, agent, history, await self._active(conversation))

    async def _active(self, conversation: Conversation) -> dict[str, Any] | None:
        reply_id = await self.reply_log.running_reply(str(conversation.id))
        if reply_id is None:
            return None
        state = await self.reply_log.state(reply_id)
        if state is None or not state.running:
            return None
        return {"reply_id": reply_id, "last_seq": await self.reply_log.last_seq(reply_id)}

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
        with self.tracing.span("parley.rules", {"parley.rules.id": agent.rules.id}) as span:
            verdict = await _off_the_loop(len(text), agent.rules.check_input, text)
            span.set("parley.rules.actions", [event.action for event in verdict.events])
        reply_id = str(uuid.uuid4())
        # The history is only needed if the reply opens, but reading it
        # alongside saves a round trip on the way to the first token.
        opened, history = await asyncio.gather(
            self.reply_log.open(
                reply_id=reply_id,
                user_id=user.user_id,
                conversation_id=str(conversation.id),
                client_id=client_id,
                agent_id=agent.id,
                owner=self.replies.deps.owner,
                lease_ms=self.replies.deps.lease_ms,
            ),
            self.memory.recent(conversation.id)
            if given is None
            else self._caller_history(agent.rules, given),
            return_exceptions=True,
        )
        if isinstance(opened, ConversationHeld):
            return await self._hold(conversation, agent, client_id, verdict)
        if isinstance(opened, BaseException):
            raise opened
        if not opened:  # busy, unless this is a resend of the running reply's message
            return await self._earlier(conversation, client_id)
        if isinstance(history, BaseException):
            await self.reply_log.abandon(reply_id, str(conversation.id), client_id)
            raise history
        if verdict.blocked_reply is None:
            history, verdict = await _screen_history(agent.rules, history, verdict)
        job = ReplyJob(
            reply_id=reply_id,
            user_id=user.user_id,
            conversation_id=conversation.id,
            agent=agent,
            user_text=verdict.text,
            input_events=verdict.events,
            blocked_reply=verdict.blocked_reply,
            handoff=verdict.handoff,
            first_turn=not history if given is None else conversation.message_count == 0,
        )
        try:
            if verdict.blocked_reply is None:
                job = await self._prepare(user, agent, history, job, can_confirm=can_confirm)
        except BaseException:
            await self._abandon(job, client_id)
            raise
        # The reply's upstream request leaves now, while the turn is stored;
        # the reply writes nothing until ``stored`` says the turn is in Postgres.
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.replies.start(job, stored)
        turn = NewTurn(
            conversation_id=conversation.id,
            client_id=client_id,
            text=verdict.text,
            user_status="blocked" if verdict.blocked_reply is not None else "accepted",
            redacted=verdict.redacted,
            reply_id=UUID(reply_id),
            catalog_version=agent.catalog_version,
            model=str(job.models[0]) if job.models else None,
            sources=job.sources,
        )
        try:
            with self.tracing.storage("insert_turn"):
                ids = await self.conversations.insert_turn(turn)
        except BaseException:
            stored.set_result(False)
            await self._abandon(job, client_id)
            raise
        stored.set_result(ids is not None)
        if ids is None:  # this client_id was used before: a resend
            await self._abandon(job, client_id)
            return await self._earlier(conversation, client_id)
        return _accepted(client_id, ids)

    async def _prepare(
        self,
        user: Principal,
        agent: Agent,
        history: list[ChatMessage],
        job: ReplyJob,
        *,
        can_confirm: bool = True,
    ) -> ReplyJob:
        """Fit the prompt to the model's window and reserve the token budget."""
        models = self._models(agent)
        system = agent.system_prompt(user_name=user.name, today=datetime.now(UTC).date())
        retrieval = await self._retrieve(agent, history, job, models[0])
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
        self, agent: Agent, history: list[ChatMessage], job: ReplyJob, model: ModelRef
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
        return Accepted(client_id, message_id, reply_id)

    async def _earlier(self, conversation: Conversation, client_id: str) -> Accepted:
        """The first acceptance of a resent ``client_id``; else the conversation is busy."""
        existing = await self.conversations.find_turn(conversation.id, client_id)
        if existing is None:
            raise Busy()
        return _accepted(client_id, existing, duplicate=True)

    def _models(self, agent: Agent) -> tuple[ModelRef, ...]:
        """The agent's models this server can reach, else the default model."""
        usable = tuple(m for m in agent.models if self.router.has_provider(m.provider))
        return usable or (self.default_model,)

    async def _abandon(self, job: ReplyJob, client_id: str) -> None:
        await self.reply_log.abandon(job.reply_id, str(job.conversation_id), client_id)
        if job.reservation is not None:
            await self.budget.settle(job.reservation, 0)


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


def _accepted(client_id: str, ids: TurnIds, *, duplicate: bool = False) -> Accepted:
    return Accepted(client_id, ids.message_id, str(ids.reply_id), duplicate)
