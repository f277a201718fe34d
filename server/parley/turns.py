"""What a message's reply is asked with, once the reply is open.

:class:`parley.chat.ChatService` owns the order of operations when a message
arrives; :class:`TurnPreparer` owns what goes upstream: the history screened
together with the new message, the knowledge passages (the first search
started early, alongside the reply's opening), the system prompt and the
history fitted to the model's window, the token budget reserved for that,
and the tools offered. Long texts are checked off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar
from uuid import UUID

from parley.auth.tokens import Principal
from parley.catalog import Agent
from parley.knowledge.prompt import with_passages
from parley.knowledge.service import Asker, Knowledge, Retrieval
from parley.knowledge.store import Hit
from parley.llm.base import ChatMessage, ModelRef
from parley.llm.context import fit_messages
from parley.llm.router import LLMRouter
from parley.observability.tracing import Tracing
from parley.replies.job import ReplyJob
from parley.rules.events import InputVerdict
from parley.rules.ruleset import RuleSet
from parley.storage.budget import TokenBudget
from parley.tools.base import Tool
from parley.tools.registry import ToolRegistry

# Longer texts are checked in a thread (see off_the_loop).
LONG_TEXT_CHARS = 512
EarlySearch = tuple[str, asyncio.Task[list[Hit]]]  # a query and its search under way
_In = TypeVar("_In")
_Out = TypeVar("_Out")


class TurnPreparer:
    def __init__(
        self,
        *,
        router: LLMRouter,
        budget: TokenBudget,
        tools: ToolRegistry,
        default_model: ModelRef,
        tracing: Tracing,
        knowledge: Knowledge | None,
    ) -> None:
        self.router = router
        self.budget = budget
        self.tools = tools
        self.default_model = default_model
        self.tracing = tracing
        self.knowledge = knowledge

    def search_early(self, agent: Agent, verdict: InputVerdict, asker: Asker) -> EarlySearch | None:
        """The turn's first knowledge search, started before the reply opens.

        It used to wait for the history and then be one more Postgres round
        trip before the upstream request (about 0.8 ms of the first token).
        If the reply does not open it is cancelled; if screening the history
        changes the message, :meth:`Knowledge.retrieve` searches afresh.
        """
        if self.knowledge is None or not agent.knowledge or verdict.blocked_reply is not None:
            return None
        return self.knowledge.search_early(agent.knowledge, verdict.text, asker)

    async def prepare(
        self,
        user: Principal,
        agent: Agent,
        history: list[ChatMessage],
        job: ReplyJob,
        *,
        can_confirm: bool = True,
        early: EarlySearch | None = None,
    ) -> ReplyJob:
        """Fit the prompt to the model's window and reserve the token budget."""
        models = self.models(agent)
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
        early: EarlySearch | None = None,
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
                asker=Asker(
                    job.user_id,
                    job.conversation_id if job.conversation_stored else None,
                    UUID(job.reply_id),
                ),
                early=early,
            )

    async def caller_history(
        self, rules: RuleSet, given: Sequence[ChatMessage], depth: int
    ) -> list[ChatMessage]:
        """A caller's own history, as deep as a stored one is read (``depth``
        messages), screened as if it had been stored (see :func:`_unblocked`)."""
        recent = _from_a_user_turn(given[-depth:])
        size = sum(len(message.content) for message in recent)
        return await off_the_loop(size, partial(_unblocked, rules), recent)

    def models(self, agent: Agent) -> tuple[ModelRef, ...]:
        """The agent's models this server can reach, else the default model."""
        usable = tuple(m for m in agent.models if self.router.has_provider(m.provider))
        return usable or (self.default_model,)


async def off_the_loop(size: int, check: Callable[[_In], _Out], argument: _In) -> _Out:
    """Run a rules check; a long text's in a thread, so running streams keep flowing
    while it is scanned (a crafted message can take libphonenumber 100+ ms)."""
    if size <= LONG_TEXT_CHARS:
        return check(argument)
    return await asyncio.to_thread(check, argument)


async def screen_history(
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
    screened, events = await off_the_loop(sum(map(len, texts)), rules.redact_history, texts)
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
