"""The model's side of a reply: rounds of streamed text and tool calls, until an answer.

Each round is one upstream request (with its retries and fallbacks). Text
goes through the rule set's output filter to the client as it arrives; a
round that ends asking for tools has them run by the :class:`ToolRunner`,
and the results go back to the model in the next round. A rule set allows
``max_tool_rounds`` rounds that may ask for tools; the request after those
forbids tools, so the model has to answer with what it has. Each further
round reserves its worst case from the token budget first, so a budget is
never overspent by more than one round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from parley.llm.base import CallRecord, ChatMessage, TextDelta, ToolCall
from parley.llm.router import RouterEvent
from parley.replies.writer import ReplyWriter
from parley.rules import RuleEvent
from parley.rules.stream import OutputFilter
from parley.storage.budget import Reservation

log = logging.getLogger(__name__)

# Between the text of one round and the next, so "Let me check." and
# "Your order shipped." do not run together.
ROUND_BREAK = "\n\n"


class EventStream(Protocol):
    def __aiter__(self) -> AsyncIterator[RouterEvent]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Progress:
    """What a reply has spent so far: kept by the task, stored when it ends."""

    # Every upstream call: its classifier rules' first (purpose "classifier"), then its own.
    calls: list[CallRecord] = field(default_factory=list)
    stored_calls: int = 0  # calls[:stored_calls] have their usage rows already
    reservation: Reservation | None = None  # held for the calls from settled_calls on
    settled_calls: int = 0
    stopped_in_tools: bool = False  # cancelled or interrupted while tools ran
    started_at: float = field(default_factory=time.monotonic)


class RoundHost(Protocol):
    """What the rounds need from the reply around them."""

    @property
    def max_tool_rounds(self) -> int: ...

    async def run_tools(self, round_number: int, calls: Sequence[ToolCall]) -> list[ChatMessage]:
        """Run the calls; the ``tool`` messages that answer them."""

    async def reserve(self, messages: Sequence[ChatMessage]) -> None:
        """Settle the rounds so far and hold the next one's worst case (or raise
        BudgetExceeded)."""

    def request(
        self, messages: Sequence[ChatMessage], *, allow_tools: bool
    ) -> AsyncGenerator[RouterEvent, None]:
        """The next round's upstream events."""

    def stopped(self) -> bool: ...


async def run_rounds(
    host: RoundHost,
    first: EventStream,
    messages: Sequence[ChatMessage],
    output: OutputFilter,
    writer: ReplyWriter,
    progress: Progress,
) -> None:
    """Stream rounds until the model answers without tools (or stops, or may not go on).

    Raises :class:`UpstreamUnavailable` when a round found no working model
    and :class:`BudgetExceeded` when the next round cannot be paid for.
    """
    history = list(messages)
    stream, round_number = first, 1
    break_before = False
    while True:
        text, calls = await _stream_round(stream, output, writer, progress, break_before)
        break_before = break_before or bool(text)
        if not calls or host.stopped() or not _completed(progress):
            return
        if round_number > host.max_tool_rounds:
            # Tools were forbidden for this round and a server sent calls anyway.
            log.warning("round %d asked for tools past the limit; ignored", round_number)
            writer.notice(_limit_notice(host.max_tool_rounds))
            return
        calls = unique_ids(round_number, calls)
        history.append(ChatMessage("assistant", text, tool_calls=tuple(calls)))
        history += await host.run_tools(round_number, calls)
        if host.stopped():
            progress.stopped_in_tools = True
            return
        await host.reserve(history)
        round_number += 1
        stream = _Closing(host.request(history, allow_tools=round_number <= host.max_tool_rounds))


async def _stream_round(
    stream: EventStream,
    output: OutputFilter,
    writer: ReplyWriter,
    progress: Progress,
    break_before: bool,
) -> tuple[str, list[ToolCall]]:
    """One round: its text to the client (through the filter), its tool calls to the caller."""
    parts: list[str] = []
    calls: list[ToolCall] = []
    try:
        async for item in stream:
            if isinstance(item, TextDelta):
                text = item.text
                if break_before and not parts:
                    text = ROUND_BREAK + text
                parts.append(item.text)
                released, events = output.feed(text)
                for event in events:
                    writer.notice(event)
                writer.delta(released)
            elif isinstance(item, ToolCall):
                calls.append(item)
            else:
                progress.calls.append(item.record)
                if item.record.cut_off:
                    writer.notice(_cut_off_notice())
    finally:
        await stream.aclose()
    return "".join(parts), calls


def unique_ids(round_number: int, calls: Sequence[ToolCall]) -> list[ToolCall]:
    """The calls with ids the vendor can pair results with, even from servers
    that send none or repeat them."""
    ids = [call.id for call in calls]
    if all(ids) and len(set(ids)) == len(ids):
        return list(calls)
    return [replace(call, id=f"call_{round_number}_{n}") for n, call in enumerate(calls, 1)]


def _completed(progress: Progress) -> bool:
    return bool(progress.calls) and progress.calls[-1].status == "complete"


def _cut_off_notice() -> RuleEvent:
    # The model went past the reply's token cap (which some servers ignore):
    # Parley stopped reading there.
    return RuleEvent(
        rule="max_reply_tokens", action="truncated", detail="reply cut at its length limit"
    )


def _limit_notice(rounds: int) -> RuleEvent:
    return RuleEvent(rule="tools", action="refused", detail=f"at most {rounds} tool rounds")


class _Closing:
    """A router stream as an :class:`EventStream` (iterate, then close)."""

    def __init__(self, events: AsyncGenerator[RouterEvent, None]) -> None:
        self._events = events

    def __aiter__(self) -> AsyncIterator[RouterEvent]:
        return self._events

    async def aclose(self) -> None:
        await self._events.aclose()
