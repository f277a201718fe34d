"""Conversation titles, written by the agent's model after the first reply.

Until then a conversation is titled by the start of its first message (its
provisional title). After the first complete reply the agent's models are
asked, with a short prompt, for a few words; the answer is cut to one plain
line (no Markdown: titles are shown as text), passed through the agent's
input redactions and output rules like any text shown to the user, and
stored unless the user renamed the conversation meanwhile. The call is
charged to the user's budget and recorded as its own ``llm_usage`` row
(``purpose = 'title'``, tied to the conversation, not a message). Any
failure keeps the provisional title. The offline demo model cannot
summarise, so it is not asked.

Titles wait their turn: a few are asked at once per process, so a wave of
first replies ending together does not take the loop from the replies still
streaming; when too many wait, new ones are skipped (the provisional title
stays, and the operator's log says how many).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

import asyncpg

from parley.catalog import Agent
from parley.errors import BudgetExceeded, UpstreamUnavailable
from parley.lane import Lane
from parley.llm.base import CallRecord, ChatMessage, ModelRef, TextDelta
from parley.llm.router import CallFinished, LLMRouter
from parley.operators.events import OperationsBus
from parley.replies.job import ReplyJob
from parley.rules import RuleSet
from parley.rules.normalize import normalize
from parley.storage.budget import TokenBudget
from parley.storage.conversations import TITLE_LENGTH
from parley.storage.ledger import FinishedReply

log = logging.getLogger(__name__)

PROMPT = (
    "You name conversations. Reply with a title for the conversation below: at most six"
    " words, in its language, plain text: no quotes, no Markdown, no final full stop."
)
EXCERPT_CHARS = 1500  # of the question and of the answer
MAX_TITLE_TOKENS = 24
TEMPERATURE = 0.2
OFFLINE_PROVIDERS = frozenset({"demo"})
TITLES_AT_ONCE = 2
TITLES_WAITING = 1000  # beyond this, a conversation keeps its provisional title

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LABEL = re.compile(r"^\s*title\s*:\s*", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#>~|\[\]<>]")
# Quotes, dashes and end punctuation around a title (as escapes: some look alike).
_EDGES = " \t\"'\u201c\u201d\u2018\u2019\u00ab\u00bb.,!?:;-\u2013\u2014"


def clean_title(raw: str) -> str:
    """One plain line of at most ``TITLE_LENGTH`` characters from a model's answer."""
    line = next((line for line in raw.splitlines() if line.strip()), "")
    line = "".join(ch for ch in line if unicodedata.category(ch)[0] != "C")
    line = _MARKUP.sub("", _LABEL.sub("", _LINK.sub(r"\1", line)))
    line = " ".join(line.split()).strip(_EDGES)
    if len(line) > TITLE_LENGTH:
        line = line[: TITLE_LENGTH - 1].rstrip() + "…"
    return line


def screen_title(title: str, rules: RuleSet) -> str:
    """The title after the agent's input redactions and output rules."""
    redacted, _ = rules.redact.rewrite(title, normalize(title))
    shown, _ = rules.output.apply(redacted)
    return clean_title(shown)


@dataclass(frozen=True, slots=True)
class _Titling:
    """What titling a conversation needs. A title waiting its turn holds this,
    not the whole reply: its prompt with every passage, its tools, its text."""

    conversation_id: UUID
    user_id: str
    agent: Agent
    models: tuple[ModelRef, ...]
    excerpt: str

    @classmethod
    def of(cls, job: ReplyJob, reply: FinishedReply) -> _Titling:
        excerpt = (
            f"User: {job.user_text[:EXCERPT_CHARS]}\n\nAssistant: {reply.text[:EXCERPT_CHARS]}"
        )
        return cls(job.conversation_id, job.user_id, job.agent, job.models, excerpt)


class TitleWriter:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        router: LLMRouter,
        budget: TokenBudget,
        bus: OperationsBus,
        enabled: bool,
    ) -> None:
        self.pool = pool
        self.router = router
        self.budget = budget
        self.bus = bus
        self.enabled = enabled
        self._running: set[asyncio.Task[None]] = set()
        self._lane = Lane(TITLES_AT_ONCE, backlog=TITLES_WAITING)
        self._skipped = 0

    def after_reply(self, job: ReplyJob, reply: FinishedReply) -> None:
        """Start titling the conversation if this was its first complete reply."""
        if not (self.enabled and job.first_turn and reply.status == "complete" and reply.text):
            return
        if not job.models or job.models[0].provider in OFFLINE_PROVIDERS:
            return
        if not self._lane.has_room():
            self._skipped += 1
            if self._skipped == 1 or self._skipped % 100 == 0:
                log.warning(
                    "%d titles waiting: %d conversations keep their provisional title",
                    self._lane.waiting,
                    self._skipped,
                )
            return
        titling = _Titling.of(job, reply)
        task = asyncio.create_task(self._queued(titling), name=f"title-{job.conversation_id}")
        self._running.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._running.discard)

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _queued(self, titling: _Titling) -> None:
        async with self._lane.slot():
            await self._title(titling)

    async def _title(self, titling: _Titling) -> None:
        try:
            raw = await self._ask(titling)
            title = screen_title(raw, titling.agent.rules) if raw else ""
            if title:
                await self._store(titling, title)
        except asyncio.CancelledError:
            raise
        except Exception:  # the provisional title stays
            log.exception("could not title conversation %s", titling.conversation_id)

    async def _ask(self, titling: _Titling) -> str:
        prompt = (ChatMessage("system", PROMPT), ChatMessage("user", titling.excerpt))
        tokens = self.router.counter.for_model(titling.models[0]).count_messages(prompt)
        try:
            reservation = await self.budget.reserve(
                titling.user_id,
                titling.agent.rules.id,
                tokens + MAX_TITLE_TOKENS,
                titling.agent.daily_token_budget,
            )
        except BudgetExceeded:
            return ""
        parts: list[str] = []
        calls: list[CallRecord] = []
        try:
            events = self.router.stream(
                titling.models,
                prompt,
                max_tokens=MAX_TITLE_TOKENS,
                temperature=TEMPERATURE,
                cancel=asyncio.Event(),
                may_call_tools=False,
                abandoned=calls.append,
            )
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                elif isinstance(event, CallFinished):
                    calls.append(event.record)
        except UpstreamUnavailable:
            parts = []
        finally:
            used = sum(call.total_tokens for call in calls)
            with contextlib.suppress(Exception):
                await self.budget.settle(reservation, used)
            await self._record_usage(titling, calls)
        answered = bool(calls) and calls[-1].status == "complete"
        return "".join(parts) if answered else ""

    async def _record_usage(self, titling: _Titling, calls: Sequence[CallRecord]) -> None:
        await self.pool.executemany(
            "INSERT INTO llm_usage (user_id, conversation_id, agent_id, provider, model,"
            " prompt_tokens, completion_tokens, total_tokens, cost_usd, estimated, ttft_ms,"
            " latency_ms, status, error, purpose)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'title')",
            [
                (
                    titling.user_id,
                    titling.conversation_id,
                    titling.agent.id,
                    call.model.provider,
                    call.model.name,
                    call.prompt_tokens,
                    call.completion_tokens,
                    call.total_tokens,
                    Decimal(str(call.cost_usd)),
                    call.estimated,
                    call.ttft_ms,
                    call.latency_ms,
                    call.status,
                    call.error,
                )
                for call in calls
            ],
        )

    async def _store(self, titling: _Titling, title: str) -> None:
        # A rename by the user (title_source 'user') is never overwritten.
        stored = await self.pool.fetchval(
            "UPDATE conversations SET title = $2, title_source = 'generated'"
            " WHERE id = $1 AND title_source = 'provisional' RETURNING id",
            titling.conversation_id,
            title,
        )
        if stored is not None:
            conversation_id = str(titling.conversation_id)
            event = {"kind": "title", "conversation_id": conversation_id, "title": title}
            with contextlib.suppress(Exception):  # stored: clients see it when they re-read
                await self.bus.publish(event)
