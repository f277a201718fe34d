"""What a client can do, independent of how it is connected.

The WebSocket handler and the REST endpoints both call :class:`ChatService`;
it resolves agents, owns the order of operations when a message arrives
(rules, busy check, budget, Postgres, then the reply task) and builds the
views clients see.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from parley.auth.tokens import Principal
from parley.catalog import Agent, CatalogStore
from parley.errors import Busy
from parley.llm.base import ChatMessage, ModelRef
from parley.llm.context import fit_messages
from parley.llm.router import LLMRouter
from parley.observability import context
from parley.observability.tracing import NO_TRACING, Tracing
from parley.replies.log import ConversationHeld, ReplyLog
from parley.replies.memory import ConversationMemory
from parley.replies.service import ReplyService
from parley.replies.task import ReplyJob
from parley.rules.budget import TokenBudget
from parley.rules.events import InputVerdict
from parley.rules.ruleset import RuleSet
from parley.sessions import Session, SessionStore
from parley.storage.conversations import ConversationStore, NewTurn, TurnIds
from parley.storage.records import Conversation, Message
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
        self, user: Principal, conversation: Conversation, *, client_id: str, text: str
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
        """
        conversation_id = str(conversation.id)
        with (
            context.bound(conversation_id=conversation_id),
            self.tracing.message(conversation.agent_id, conversation_id) as span,
        ):
            accepted = await self._send(user, conversation, client_id=client_id, text=text)
            span.set("parley.reply.id", accepted.reply_id or "")
            span.set("parley.message.duplicate", accepted.duplicate)
            return accepted

    async def _send(
        self, user: Principal, conversation: Conversation, *, client_id: str, text: str
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
            self.memory.recent(conversation.id),
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
            first_turn=not history,
        )
        try:
            if verdict.blocked_reply is None:
                job = await self._prepare(user, agent, history, job)
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
        self, user: Principal, agent: Agent, history: list[ChatMessage], job: ReplyJob
    ) -> ReplyJob:
        """Fit the prompt to the model's window and reserve the token budget."""
        models = self._models(agent)
        system = agent.system_prompt(user_name=user.name, today=datetime.now(UTC).date())
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
            tools=self.tools.select(agent.tools),
            max_tool_rounds=agent.rules.limits.max_tool_rounds,
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


def _accepted(client_id: str, ids: TurnIds, *, duplicate: bool = False) -> Accepted:
    return Accepted(client_id, ids.message_id, str(ids.reply_id), duplicate)
