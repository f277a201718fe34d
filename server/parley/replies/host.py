"""The reply as its rounds see it: its tools, its budget, its next upstream request.

:func:`parley.replies.rounds.run_rounds` drives the rounds; this is the host
it asks to run a round's tools (after storing the usage so far), to settle
the budget and reserve the next round, and to send the next request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from uuid import UUID

from parley.llm.base import ChatMessage, ToolCall
from parley.llm.router import RouterEvent
from parley.observability import metrics
from parley.replies.job import ReplyDeps, ReplyJob, StopSignal
from parley.replies.rounds import Progress
from parley.replies.tool_runner import ToolRunner
from parley.replies.writer import ReplyWriter
from parley.tools.base import ToolContext, spec_of

log = logging.getLogger(__name__)


class ReplyRounds:
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
        await settle(self._deps, progress)
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
        return upstream_events(
            self._job, self._deps, self._stop, self._progress, messages, allow_tools=allow_tools
        )

    def stopped(self) -> bool:
        return self._stop.event.is_set()


def upstream_events(
    job: ReplyJob,
    deps: ReplyDeps,
    stop: StopSignal,
    progress: Progress,
    messages: Sequence[ChatMessage] | None = None,
    *,
    allow_tools: bool = True,
) -> AsyncGenerator[RouterEvent, None]:
    """A round's upstream events: the job's models and tools, the given (or first) messages."""
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


async def settle(deps: ReplyDeps, progress: Progress) -> None:
    """Replace the held worst case by what the calls since it was taken really used."""
    reservation, progress.reservation = progress.reservation, None
    used = sum(call.total_tokens for call in progress.calls[progress.settled_calls :])
    progress.settled_calls = len(progress.calls)
    if reservation is not None:
        with contextlib.suppress(Exception):  # settling only ever over-counts when it fails
            await deps.budget.settle(reservation, used)
