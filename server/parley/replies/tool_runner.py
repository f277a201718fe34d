"""One reply's tool calls: decided by the server, run at most once, reported in order.

For every call the model asks for, :class:`ToolRunner` checks that the
agent may use the tool and has calls left, validates the arguments against
the tool's schema, applies the rule set's input redactions to them (unless
the tool is declared to receive personal data), asks the user when the tool
wants confirmation, runs it under its timeout (cancelled with the reply),
screens the result with the same redactions before the model sees it, and
records each step in Postgres before the model continues. The client sees a
``tool_call`` frame when a call waits or starts and a ``tool_result`` frame
when it ends, both numbered in the reply's ``seq``.

Nothing the model wrote is trusted: a tool it invents, arguments that do not
parse, a tool that fails or hangs all end as a tool error the model reads,
never as an exception that ends the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from uuid import UUID

from parley.llm.base import ChatMessage, ToolCall
from parley.observability import metrics
from parley.observability.tracing import NO_TRACING, Tracing
from parley.protocol import ToolCallFrame, ToolResultFrame
from parley.replies.confirmations import Confirmations, Decision
from parley.replies.writer import ReplyWriter
from parley.rules import RuleEvent
from parley.rules.ruleset import RuleSet
from parley.storage.tool_calls import ToolCallRow, ToolCallStore
from parley.tools.base import Tool, ToolContext, ToolResult

log = logging.getLogger(__name__)

# The most of one result the model reads; the rest is cut (and it is told so).
MAX_RESULT_CHARS = 16_000
TOOLS_RULE = "tools"  # the rule name on notices about tool calls
MAX_NAME_CHARS = 64  # of a tool name the model made up, as repeated back to anyone

# How a call's outcome reaches Postgres: its row exists (update it), it was
# never begun (insert it finished), or it must stay as first recorded.
Storing = Literal["finish", "insert", "keep"]


@dataclass(frozen=True, slots=True)
class ToolDeps:
    store: ToolCallStore
    confirmations: Confirmations
    confirm_timeout: float


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: str  # ok, error, refused or declined
    result: ToolResult


class ToolRunner:
    """Runs the tool calls of one reply, a round at a time."""

    def __init__(
        self,
        *,
        context: ToolContext,
        tools: Mapping[str, Tool],
        rules: RuleSet,
        deps: ToolDeps,
        writer: ReplyWriter,
        stop: asyncio.Event,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._context = context
        self._tools = tools
        self._rules = rules
        self._deps = deps
        self._writer = writer
        self._stop = stop
        self._tracing = tracing
        self._made: Counter[str] = Counter()

    async def run_round(self, round_number: int, calls: Sequence[ToolCall]) -> list[ChatMessage]:
        """Run one round's calls concurrently; their results, in the model's order.

        Each call is known to clients and storage by an id of ours,
        ``r<round>c<n>``: unique in the reply and the same on every attempt,
        which the model's ids (repeated or missing on some servers) are not.
        """
        outcomes = await asyncio.gather(
            *(
                self._observed(round_number, replace(call, id=f"r{round_number}c{n}"))
                for n, call in enumerate(calls, start=1)
            )
        )
        return [
            ChatMessage(
                "tool",
                outcome.result.content,
                tool_call_id=call.id,
                is_error=outcome.status != "ok",
            )
            for call, outcome in zip(calls, outcomes, strict=True)
        ]

    # -- one call ------------------------------------------------------------------

    async def _observed(self, round_number: int, call: ToolCall) -> _Outcome:
        """:meth:`_one`, in a span of its own and counted, under a name from the catalog."""
        name = call.name if call.name in self._tools else metrics.UNKNOWN_TOOL
        started = time.monotonic()
        with self._tracing.tool_call(name, call.id) as span:
            outcome = await self._one(round_number, call)
            span.set("parley.tool.status", outcome.status)
            if outcome.status == "error":
                span.fail("tool_error")
        metrics.tool_call(name, outcome.status, time.monotonic() - started)
        return outcome

    async def _one(self, round_number: int, call: ToolCall) -> _Outcome:
        tool = self._tools.get(call.name)
        if tool is None:
            name = call.name[:MAX_NAME_CHARS]  # the model's text: capped, and screened below
            return await self._refuse(
                round_number, call, f"The tool {name!r} is not available to this agent."
            )
        self._made[tool.name] += 1
        limit = tool.max_calls_per_reply
        if limit is not None and self._made[tool.name] > limit:
            return await self._refuse(
                round_number, call, f"{tool.name} may be called at most {limit} times per reply."
            )
        checked = tool.check(call.arguments)
        if isinstance(checked, str):
            row = self._row(round_number, call, tool, _display(call.arguments), "error")
            invalid = ToolResult.error(f"Invalid arguments: {checked}")
            return await self._settle(row, "error", invalid, storing="insert")
        arguments = checked if tool.receives_pii else self._redacted(checked)
        row = self._row(round_number, call, tool, arguments, "running")
        first_status = "awaiting_confirmation" if tool.confirm else "running"
        if not await self._deps.store.begin(replace(row, status=first_status)):
            # Recorded before: this call was already made once and must not run again.
            again = ToolResult.error("This call was already made.")
            return await self._settle(row, "error", again, storing="keep")
        if tool.confirm and (declined := await self._confirm(row)) is not None:
            return declined
        self._frame_call(row, "running")
        context = replace(self._context, call_id=call.id)
        result = await self._run(tool, arguments, context)
        return await self._settle(row, result.status, self._screened(result))

    async def _confirm(self, row: ToolCallRow) -> _Outcome | None:
        """Ask the user; ``None`` once approved, else the declined outcome."""
        self._frame_call(row, "awaiting_confirmation")
        decision, by = await self._deps.confirmations.wait(
            str(row.reply_id), row.call_id, within=self._deps.confirm_timeout, stop=self._stop
        )
        if decision is Decision.APPROVED:
            await self._deps.store.update(
                row.reply_id, row.call_id, status="running", decided_by=by
            )
            return None
        reason = {
            Decision.DECLINED: "The user declined this call; it did not run.",
            Decision.TIMED_OUT: "The user did not approve this call in time; it did not run.",
            Decision.STOPPED: "The reply was stopped before the user approved this call.",
        }[decision]
        await self._deps.store.update(row.reply_id, row.call_id, status="declined", decided_by=by)
        return await self._settle(row, "declined", ToolResult.error(reason))

    async def _run(self, tool: Tool, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """The tool's result; an error result if it raised, timed out or the reply stopped."""
        running = asyncio.create_task(tool.run(arguments, context))
        stopped = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait(
                {running, stopped}, timeout=tool.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
            if self._stop.is_set():
                return ToolResult.error("The call was cancelled with the reply.")
            return ToolResult.error(f"{tool.name} did not answer within {tool.timeout:g}s.")
        try:
            return running.result()
        except Exception as error:  # a tool bug must not end the reply
            log.exception("tool %s raised", tool.name)
            return ToolResult.error(f"{tool.name} failed: {type(error).__name__}.")

    # -- outcomes ------------------------------------------------------------------

    async def _refuse(self, round_number: int, call: ToolCall, reason: str) -> _Outcome:
        detail = self._shown(reason, notify=False)
        self._writer.notice(RuleEvent(rule=TOOLS_RULE, action="refused", detail=detail))
        row = self._row(round_number, call, None, _display(call.arguments), "refused")
        return await self._settle(row, "refused", ToolResult.error(reason), storing="insert")

    async def _settle(
        self, row: ToolCallRow, status: str, result: ToolResult, *, storing: Storing = "finish"
    ) -> _Outcome:
        """Store the outcome, then tell the client: all before the model hears of it."""
        summary = self._shown(result.summary, notify=False)
        if storing != "keep":
            await self._store(replace(row, status=status), storing, summary, result.content)
        self._writer.numbered(
            ToolResultFrame(
                reply_id=self._context.reply_id,
                seq=0,  # the writer numbers it
                call_id=row.call_id,
                tool=row.tool,
                status=status,
                summary=summary,
            )
        )
        if status == "ok" and result.handoff_reason is not None:
            self._writer.notice(
                RuleEvent(
                    rule=row.tool, action="handoff", detail=self._shown(result.handoff_reason)
                )
            )
        return _Outcome(status, result)

    async def _store(self, row: ToolCallRow, storing: Storing, summary: str, result: str) -> None:
        store = self._deps.store
        try:
            if storing == "insert":
                await store.record(row, summary=summary, result=result)
            else:
                await store.finish(
                    row.reply_id, row.call_id, status=row.status, summary=summary, result=result
                )
        except Exception as error:
            # The reply goes on (the client sees the outcome in its frames); the
            # row keeps saying "running", which the record must then be read as.
            log.error("could not store the outcome of tool call %s: %s", row.call_id, error)
            metrics.storage_error("postgres", "store_tool_call")

    # -- rules -------------------------------------------------------------------

    def _redacted(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Input redactions on every string in the arguments, before they leave."""
        redacted: dict[str, Any] = _map_strings(arguments, self._redact)
        return redacted

    def _redact(self, text: str, *, notify: bool = True) -> str:
        redacted, events = self._rules.redact.apply(text)
        for event in events if notify else ():
            self._writer.notice(event)
        return redacted

    def _screened(self, result: ToolResult) -> ToolResult:
        """What the model may read of a result: redacted, and capped in size."""
        content = self._redact(result.content)
        if len(content) > MAX_RESULT_CHARS:
            content = content[:MAX_RESULT_CHARS] + "\n[result truncated]"
        return ToolResult(result.status, content, result.summary, result.handoff_reason)

    def _shown(self, text: str, *, notify: bool = True) -> str:
        """Text the user will see: input redactions (already announced), then output rules."""
        rewritten, events = self._rules.output.apply(self._redact(text, notify=False))
        for event in events if notify else ():
            self._writer.notice(event)
        return rewritten

    def _frame_call(self, row: ToolCallRow, status: str) -> None:
        self._writer.numbered(
            ToolCallFrame(
                reply_id=self._context.reply_id,
                seq=0,  # the writer numbers it
                call_id=row.call_id,
                tool=row.tool,
                arguments=_map_strings(row.arguments, self._shown),
                status=status,
            )
        )

    def _row(
        self, round_number: int, call: ToolCall, tool: Tool | None, arguments: Any, status: str
    ) -> ToolCallRow:
        return ToolCallRow(
            reply_id=UUID(self._context.reply_id),
            conversation_id=UUID(self._context.conversation_id),
            call_id=call.id,
            round=round_number,
            tool=call.name[:MAX_NAME_CHARS],
            arguments=arguments,
            status=status,
            side_effects=tool is not None and tool.side_effects,
        )


def _display(raw: str) -> Any:
    """The model's arguments for the record: parsed if they parse, else the raw text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    return value
