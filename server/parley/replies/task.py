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
from typing import cast
from uuid import UUID

from parley.errors import BudgetExceeded, ParleyError, UpstreamUnavailable
from parley.llm.base import ChatMessage
from parley.llm.router import CallFinished
from parley.observability import context, metrics
from parley.protocol import DoneFrame, ReplyStatus, SourcesFrame, Usage
from parley.replies.events import Event
from parley.replies.feed import ReplyFeed
from parley.replies.host import ReplyRounds, settle, upstream_events
from parley.replies.job import ReplyDeps, ReplyJob, StopSignal
from parley.replies.prefetch import Prefetched
from parley.replies.rounds import Progress, run_rounds
from parley.replies.screening import Screening
from parley.replies.writer import ReplyWriter
from parley.storage.conversations import CONTEXT_STATUSES
from parley.storage.ledger import FinishedReply, ReplyTotals

log = logging.getLogger(__name__)

# The error frame of a reply whose model stopped mid-way (docs/protocol.md).
BROKE_OFF = "The language model stopped before finishing this reply; the text so far is kept."
STORE_ATTEMPTS = 5


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
        None
        if job.blocked_reply is not None
        else Prefetched(upstream_events(job, deps, stop, progress))
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
    status = ReplyStatus.FAILED
    try:
        # The input notices and the sources go with the first text (see hold).
        writer.hold()
        for event in job.input_events:
            writer.notice(event)
        if job.blocked_reply is not None:
            writer.delta(job.blocked_reply)
            status = ReplyStatus.BLOCKED
        else:
            assert upstream is not None
            if screening is not None and await _gate(screening, upstream, stop, writer, progress):
                status = ReplyStatus.BLOCKED
            else:
                if job.sources:  # numbered before any text, so resume replays it first
                    sources = SourcesFrame(reply_id=job.reply_id, seq=0, sources=list(job.sources))
                    writer.numbered(sources)
                writer.release()
                status = await _generate(job, deps, upstream, stop, writer, progress)
        await writer.drain()
    except Exception as error:
        log.exception("reply %s failed", job.reply_id)
        if (backend := metrics.backend_of(error)) is not None:
            metrics.storage_error(backend, "write_reply")
        interrupted = stop.event.is_set() and stop.reason == ReplyStatus.INTERRUPTED
        status = ReplyStatus.INTERRUPTED if interrupted else ReplyStatus.FAILED
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
    stop.set(ReplyStatus.BLOCKED)
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


async def _generate(
    job: ReplyJob,
    deps: ReplyDeps,
    first: Prefetched,
    stop: StopSignal,
    writer: ReplyWriter,
    progress: Progress,
) -> ReplyStatus:
    output = job.agent.rules.output_filter()
    host = ReplyRounds(job, deps, stop, writer, progress)
    try:
        await run_rounds(host, first, job.messages, output, writer, progress)
    except (UpstreamUnavailable, BudgetExceeded) as error:
        writer.error(error)
        return ReplyStatus.FAILED
    status = _status(progress, stop)
    tail, events = output.finish()
    # A reply stopped before its first word gets no disclaimer on its own.
    if writer.parts or status == ReplyStatus.COMPLETE:
        for event in events:
            writer.notice(event)
        writer.delta(tail)
    if status == ReplyStatus.FAILED:
        # The model broke off after its first words (never retried then: that
        # would repeat them). The client is told, as when no model could start.
        writer.error(UpstreamUnavailable(BROKE_OFF))
    return status


def _status(progress: Progress, stop: StopSignal) -> ReplyStatus:
    calls = [call for call in progress.calls if call.purpose == "reply"]
    if stop.event.is_set() and (
        progress.stopped_in_tools or not calls or calls[-1].status == "cancelled"
    ):
        return stop.reason
    return ReplyStatus(calls[-1].status) if calls else ReplyStatus.FAILED


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
            stop.set(ReplyStatus.CANCELLED)


async def _finish(
    job: ReplyJob, deps: ReplyDeps, writer: ReplyWriter, progress: Progress, status: ReplyStatus
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
    _, message_id = await asyncio.gather(settle(deps, progress), _store(deps, reply))
    if message_id is None:  # left for the sweeper, which retries until Postgres is back
        writer.feed.detach()
        deps.feeds.close(job.reply_id)
        return
    metrics.reply_stored(
        reply,
        deps.router.cost_usd,
        # A blocked turn's text is a rule's, even when a classifier let a model call start.
        first_text_seconds=None
        if status == ReplyStatus.BLOCKED
        else _first_text_seconds(progress, writer),
        duration_seconds=ended - progress.started_at,
    )
    done = Event.of(done_frame(job.reply_id, message_id, status, reply.totals), at=writer.seq)
    history = deps.memory.after_turn(_remembered(job, reply))
    try:
        await deps.log.close(job.reply_id, str(job.conversation_id), done, history=history)
    except Exception as error:  # stored in Postgres; the sweeper closes the log later
        log.warning("could not close the log of reply %s: %s", job.reply_id, error)
        metrics.storage_error("redis", "close_log")
        with contextlib.suppress(Exception):  # the cache lacks this turn: read it afresh
            await deps.memory.forget(job.conversation_id)
    writer.feed.publish([done])
    deps.feeds.close(job.reply_id)
    await deps.hooks.stored(job, reply, message_id)


def _remembered(job: ReplyJob, reply: FinishedReply) -> list[ChatMessage]:
    """The turn's messages that the model sees next time, as Postgres has them
    (ConversationStore.recent_context): the cached history gets the same."""
    if reply.status == ReplyStatus.BLOCKED:  # the ledger stores the message as blocked too
        return []
    turn = [ChatMessage("user", job.user_text)] if job.user_text else []
    if reply.status in CONTEXT_STATUSES and reply.text:
        turn.append(ChatMessage("assistant", reply.text))
    return turn


def _first_text_seconds(progress: Progress, writer: ReplyWriter) -> float | None:
    """How long the reply's first text took, if a model wrote it (not a rule's fixed reply)."""
    if writer.first_text_at is None or not progress.calls:
        return None
    return writer.first_text_at - progress.started_at


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
    reply_id: str, message_id: UUID | None, status: ReplyStatus, totals: ReplyTotals
) -> DoneFrame:
    return DoneFrame(
        reply_id=reply_id,
        message_id=str(message_id) if message_id else None,
        status=status,
        usage=cast(Usage, totals.public()),
    )
