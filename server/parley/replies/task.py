"""One reply, from the first upstream byte to its stored final state.

The task publishes every frame to the reply log (and, once written there, to
the followers on this instance); it never touches a socket, so it carries on
when its client goes away. It holds a
lease in Redis while it runs; when it stops, the assistant message, its
usage and the rule events are stored before ``done`` is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from parley.catalog import Agent
from parley.errors import BudgetExceeded, ParleyError, UpstreamUnavailable
from parley.llm.base import ChatMessage, ModelRef, ToolCall
from parley.llm.router import CallFinished, LLMRouter, RouterEvent
from parley.observability import context, metrics
from parley.observability.tracing import NO_TRACING, Tracing
from parley.replies.events import Event
from parley.replies.feed import LocalFeeds, ReplyFeed
from parley.replies.hooks import ReplyHooks
from parley.replies.log import ReplyLog
from parley.replies.memory import ConversationMemory
from parley.replies.rounds import Progress, run_rounds
from parley.replies.screening import Classifiers, Screening
from parley.replies.tool_runner import ToolDeps, ToolRunner
from parley.replies.writer import ReplyWriter
from parley.rules import RuleEvent
from parley.rules.budget import Reservation, TokenBudget
from parley.storage.ledger import FinishedReply, Ledger, ReplyTotals
from parley.tools.base import Tool, ToolContext, spec_of

log = logging.getLogger(__name__)

# The error frame of a reply whose model stopped mid-way (docs/protocol.md).
BROKE_OFF = "The language model stopped before finishing this reply; the text so far is kept."
StopReason = Literal["cancelled", "interrupted", "blocked"]
STORE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ReplyJob:
    """Everything a reply needs, decided when its message was accepted."""

    reply_id: str
    user_id: str
    conversation_id: UUID
    agent: Agent
    user_text: str
    messages: tuple[ChatMessage, ...] = ()
    models: tuple[ModelRef, ...] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    input_events: tuple[RuleEvent, ...] = ()
    blocked_reply: str | None = None
    handoff: bool = False
    reservation: Reservation | None = None
    tools: Mapping[str, Tool] = field(default_factory=dict)  # by the name the model calls
    max_tool_rounds: int = 5
    first_turn: bool = False  # the conversation's first message (its title follows the reply)
    # The knowledge passages in the prompt, as the ``sources`` frame lists them.
    sources: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class StopSignal:
    """Set by a cancel (from any instance), by this instance shutting down, or by a
    classifier rule's verdict ("blocked")."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: StopReason = "cancelled"

    def set(self, reason: StopReason) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


@dataclass(frozen=True, slots=True)
class ReplyDeps:
    log: ReplyLog
    ledger: Ledger
    router: LLMRouter
    budget: TokenBudget
    memory: ConversationMemory
    feeds: LocalFeeds
    tools: ToolDeps
    owner: str
    lease_ms: int
    classifiers: Classifiers
    tracing: Tracing = NO_TRACING
    hooks: ReplyHooks = field(default_factory=ReplyHooks)


async def run_reply(
    job: ReplyJob,
    deps: ReplyDeps,
    stop: StopSignal,
    feed: ReplyFeed,
    stored: asyncio.Future[bool],
) -> None:
    # The task's own copy of the context: these ids stay with this reply.
    context.bind(
        user_id=job.user_id, conversation_id=str(job.conversation_id), reply_id=job.reply_id
    )
    with deps.tracing.reply(job.reply_id, job.agent.id):
        await _run_reply(job, deps, stop, feed, stored)


async def _run_reply(
    job: ReplyJob,
    deps: ReplyDeps,
    stop: StopSignal,
    feed: ReplyFeed,
    stored: asyncio.Future[bool],
) -> None:
    progress = Progress(reservation=job.reservation)
    upstream = (
        None if job.blocked_reply is not None else Prefetched(_upstream(job, deps, stop, progress))
    )
    classifiers = job.agent.rules.classifiers
    # Judged while the model already answers; rule sets without classifiers skip this.
    screening = (
        deps.classifiers.start(classifiers, job.user_text)
        if upstream is not None and classifiers
        else None
    )
    try:
        turn_stored = await stored
    finally:
        if upstream is not None and not (stored.done() and stored.result()):
            await upstream.aclose()
            if screening is not None:
                await screening.aclose()
    if not turn_stored:  # nothing was written and nothing is kept
        deps.feeds.close(job.reply_id)
        return
    writer = ReplyWriter(deps.log, feed, job.reply_id)
    lease = asyncio.create_task(_keep_lease(job, deps, stop))
    status = "failed"
    try:
        for event in job.input_events:
            writer.notice(event)
        if job.blocked_reply is not None:
            writer.delta(job.blocked_reply)
            status = "blocked"
        else:
            assert upstream is not None
            if screening is not None and await _gate(screening, upstream, stop, writer, progress):
                status = "blocked"
            else:
                if job.sources:  # numbered before any text, so resume replays it first
                    writer.numbered({"type": "sources", "sources": list(job.sources)})
                status = await _generate(job, deps, upstream, stop, writer, progress)
        await writer.drain()
    except Exception as error:
        log.exception("reply %s failed", job.reply_id)
        if (backend := metrics.backend_of(error)) is not None:
            metrics.storage_error(backend, "write_reply")
        status = "interrupted" if stop.event.is_set() and stop.reason == "interrupted" else "failed"
        with contextlib.suppress(Exception):
            writer.error(ParleyError("The reply stopped because of a server error."))
            await writer.drain()
    finally:
        lease.cancel()
        if screening is not None:  # only still running if the reply failed before its gate
            await screening.aclose()
        await _finish(job, deps, writer, progress, status)


async def _gate(
    screening: Screening,
    upstream: Prefetched,
    stop: StopSignal,
    writer: ReplyWriter,
    progress: Progress,
) -> bool:
    """The second gate (the first is the stored turn): nothing of the reply goes
    out before every classifier's verdict. True if a verdict ended the turn.

    It waits even when the reply was cancelled meanwhile: a blocked message
    must be marked so, or it would reach the model in a later turn's history.
    """
    screened = await screening.result()
    # The reply's own records only arrive as its stream is read, so these go first.
    progress.calls.extend(screened.calls)
    for event in screened.verdict.events:
        writer.notice(event)
    if screened.verdict.reply is None:
        return False
    stop.set("blocked")
    await _drain(upstream, progress)
    writer.delta(screened.verdict.reply)
    return True


async def _drain(upstream: Prefetched, progress: Progress) -> None:
    """Let a cancelled request end and keep its records: it was sent, and may be billed.
    Nothing more is read from the vendor once the stop is set."""
    try:
        async for event in upstream:
            if isinstance(event, CallFinished):
                progress.calls.append(event.record)
    except UpstreamUnavailable:
        pass  # every model had failed before the verdict; their records are kept
    finally:
        await upstream.aclose()


def _upstream(
    job: ReplyJob,
    deps: ReplyDeps,
    stop: StopSignal,
    progress: Progress,
    messages: Sequence[ChatMessage] | None = None,
    *,
    allow_tools: bool = True,
) -> AsyncGenerator[RouterEvent, None]:
    return deps.router.stream(
        job.models,
        job.messages if messages is None else messages,
        max_tokens=job.max_tokens,
        temperature=job.temperature,
        cancel=stop.event,
        # A history with tool turns keeps describing the tools (Anthropic
        # requires it); past the round limit the model may only answer.
        tools=[spec_of(tool) for tool in job.tools.values()],
        may_call_tools=allow_tools,
        abandoned=progress.calls.append,
    )


async def _generate(
    job: ReplyJob,
    deps: ReplyDeps,
    first: Prefetched,
    stop: StopSignal,
    writer: ReplyWriter,
    progress: Progress,
) -> str:
    output = job.agent.rules.output_filter()
    host = _Rounds(job, deps, stop, writer, progress)
    try:
        await run_rounds(host, first, job.messages, output, writer, progress)
    except (UpstreamUnavailable, BudgetExceeded) as error:
        writer.error(error)
        return "failed"
    status = _status(progress, stop)
    tail, events = output.finish()
    # A reply stopped before its first word gets no disclaimer on its own.
    if writer.parts or status == "complete":
        for event in events:
            writer.notice(event)
        writer.delta(tail)
    if status == "failed":
        # The model broke off after its first words (never retried then: that
        # would repeat them). The client is told, as when no model could start.
        writer.error(UpstreamUnavailable(BROKE_OFF))
    return status


def _status(progress: Progress, stop: StopSignal) -> str:
    calls = [call for call in progress.calls if call.purpose == "reply"]
    if stop.event.is_set() and (
        progress.stopped_in_tools or not calls or calls[-1].status == "cancelled"
    ):
        return stop.reason
    return calls[-1].status if calls else "failed"


class _Rounds:
    """The reply as the rounds see it: its tools, its budget, its next request."""

    def __init__(
        self,
        job: ReplyJob,
        deps: ReplyDeps,
        stop: StopSignal,
        writer: ReplyWriter,
        progress: Progress,
    ) -> None:
        self._job = job
        self._deps = deps
        self._stop = stop
        self._progress = progress
        context = ToolContext(
            reply_id=job.reply_id,
            call_id="",
            user_id=job.user_id,
            conversation_id=str(job.conversation_id),
            agent_id=job.agent.id,
            knowledge=job.agent.knowledge,
        )
        self._runner = ToolRunner(
            context=context,
            tools=job.tools,
            rules=job.agent.rules,
            deps=deps.tools,
            writer=writer,
            stop=stop.event,
            tracing=deps.tracing,
        )

    @property
    def max_tool_rounds(self) -> int:
        return self._job.max_tool_rounds if self._job.tools else 0

    async def run_tools(self, round_number: int, calls: Sequence[ToolCall]) -> list[ChatMessage]:
        await self._store_calls()
        return await self._runner.run_round(round_number, calls)

    async def _store_calls(self) -> None:
        """The usage of the calls so far, stored before any tool can have an effect."""
        progress, job = self._progress, self._job
        try:
            await self._deps.ledger.add_calls(
                UUID(job.reply_id),
                job.user_id,
                job.agent.id,
                progress.calls[progress.stored_calls :],
            )
        except Exception as error:  # they are stored with the reply when it ends
            log.warning("could not store the usage of reply %s so far: %s", job.reply_id, error)
            metrics.storage_error("postgres", "store_usage")
            return
        progress.stored_calls = len(progress.calls)

    async def reserve(self, messages: Sequence[ChatMessage]) -> None:
        job, progress = self._job, self._progress
        await _settle(self._deps, progress)
        tokens = self._deps.router.counter.for_model(job.models[0])
        with self._deps.tracing.span("parley.budget"):
            progress.reservation = await self._deps.budget.reserve(
                job.user_id,
                job.agent.rules.id,
                tokens.count_messages(messages) + job.max_tokens,
                job.agent.daily_token_budget,
            )

    def request(
        self, messages: Sequence[ChatMessage], *, allow_tools: bool
    ) -> AsyncGenerator[RouterEvent, None]:
        return _upstream(
            self._job, self._deps, self._stop, self._progress, messages, allow_tools=allow_tools
        )

    def stopped(self) -> bool:
        return self._stop.event.is_set()


class Prefetched:
    """The reply's upstream events, the first of them already on its way.

    Creating it sends the request to the model (in a task of its own), so the
    vendor works while the caller is still storing the turn.
    """

    def __init__(self, events: AsyncGenerator[RouterEvent, None]) -> None:
        self._events = events
        self._first: asyncio.Task[RouterEvent | None] | None = asyncio.create_task(_first(events))

    def __aiter__(self) -> Prefetched:
        return self

    async def __anext__(self) -> RouterEvent:
        if self._first is None:
            return await anext(self._events)
        first, self._first = self._first, None
        event = await first
        if event is None:
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        if self._first is not None:
            self._first.cancel()
            await asyncio.wait({self._first})
            if not self._first.cancelled():
                self._first.exception()  # retrieved: asyncio must not log it as forgotten
            self._first = None
        await self._events.aclose()


async def _first(events: AsyncGenerator[RouterEvent, None]) -> RouterEvent | None:
    return await anext(events, None)


async def _keep_lease(job: ReplyJob, deps: ReplyDeps, stop: StopSignal) -> None:
    interval = deps.lease_ms / 3000
    while True:
        await asyncio.sleep(interval)
        try:
            alive = await deps.log.renew(
                job.reply_id, str(job.conversation_id), deps.owner, deps.lease_ms
            )
        except Exception as error:  # a Redis blip must not end the reply
            log.warning("could not renew lease of reply %s: %s", job.reply_id, error)
            metrics.storage_error("redis", "renew_lease")
            continue
        if not alive:
            stop.set("cancelled")


async def _finish(
    job: ReplyJob, deps: ReplyDeps, writer: ReplyWriter, progress: Progress, status: str
) -> None:
    ended = time.monotonic()
    reply = FinishedReply(
        reply_id=UUID(job.reply_id),
        user_id=job.user_id,
        conversation_id=job.conversation_id,
        agent_id=job.agent.id,
        text=writer.text,
        status=status,
        calls=tuple(progress.calls),
        stored_calls=progress.stored_calls,
        events=tuple(writer.rule_events),
        needs_human=job.handoff or any(e.action == "handoff" for e in writer.rule_events),
    )
    # The budget's round trip to Redis hides behind the write to Postgres.
    _, message_id = await asyncio.gather(_settle(deps, progress), _store(deps, reply))
    if message_id is None:  # left for the sweeper, which retries until Postgres is back
        writer.feed.detach()
        deps.feeds.close(job.reply_id)
        return
    metrics.reply_stored(
        reply,
        deps.router.cost_usd,
        # A blocked turn's text is a rule's, even when a classifier let a model call start.
        first_text_seconds=None if status == "blocked" else _first_text_seconds(progress, writer),
        duration_seconds=ended - progress.started_at,
    )
    if status != "blocked" and reply.text:
        turn = (ChatMessage("user", job.user_text), ChatMessage("assistant", reply.text))
        with contextlib.suppress(Exception):
            await deps.memory.append(job.conversation_id, turn)
    done = Event.of(done_frame(job.reply_id, message_id, status, reply.totals), at=writer.seq)
    try:
        await deps.log.close(job.reply_id, str(job.conversation_id), done)
    except Exception as error:  # stored in Postgres; the sweeper closes the log later
        log.warning("could not close the log of reply %s: %s", job.reply_id, error)
        metrics.storage_error("redis", "close_log")
    writer.feed.publish([done])
    deps.feeds.close(job.reply_id)
    await deps.hooks.stored(job, reply, message_id)


def _first_text_seconds(progress: Progress, writer: ReplyWriter) -> float | None:
    """How long the reply's first text took, if a model wrote it (not a rule's fixed reply)."""
    if writer.first_text_at is None or not progress.calls:
        return None
    return writer.first_text_at - progress.started_at


async def _settle(deps: ReplyDeps, progress: Progress) -> None:
    """Replace the held worst case by what the calls since it was taken really used."""
    reservation, progress.reservation = progress.reservation, None
    used = sum(call.total_tokens for call in progress.calls[progress.settled_calls :])
    progress.settled_calls = len(progress.calls)
    if reservation is not None:
        with contextlib.suppress(Exception):  # settling only ever over-counts when it fails
            await deps.budget.settle(reservation, used)


async def _store(deps: ReplyDeps, reply: FinishedReply) -> UUID | None:
    delay = 0.2
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            with deps.tracing.storage("finish_reply"):
                message_id = await deps.ledger.finish(reply)
        except Exception as error:
            log.warning(
                "storing reply %s failed (attempt %d/%d): %s",
                reply.reply_id,
                attempt,
                STORE_ATTEMPTS,
                error,
            )
            metrics.storage_error("postgres", "store_reply")
            await asyncio.sleep(delay)
            delay *= 2
            continue
        if message_id is None:
            log.warning("reply %s was already finished elsewhere", reply.reply_id)
        return message_id
    log.error("reply %s could not be stored; the sweeper will retry", reply.reply_id)
    return None


def done_frame(
    reply_id: str, message_id: UUID | None, status: str, totals: ReplyTotals
) -> dict[str, Any]:
    return {
        "type": "done",
        "reply_id": reply_id,
        "message_id": str(message_id) if message_id else None,
        "status": status,
        "usage": totals.public(),
    }
