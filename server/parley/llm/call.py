"""One upstream call: stream a provider's output while watching timeouts, cancellation and the cap.

The router decides what to do after a call (retry, fall back, stop); this
module only runs the call and reports how it ended as an :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from parley.llm.base import (
    CallStatus,
    ChatRequest,
    Finish,
    Provider,
    ProviderError,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)
from parley.llm.cap import TokenCap
from parley.llm.tokens import ModelTokens

log = logging.getLogger(__name__)


class _Stop(enum.Enum):
    ENDED = "ended"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed out"
    ABANDONED = "abandoned"  # the caller stopped reading (closed the stream) mid-call


@dataclass(frozen=True, slots=True)
class Outcome:
    status: CallStatus
    text: str
    usage: Usage | None
    finish_reason: str | None
    error: str | None
    transient: bool  # a retry could succeed (only meaningful when failed)
    rejected: bool  # failed before the upstream accepted the request: nothing billed
    ttft_ms: int | None  # until the first text or tool call
    latency_ms: int
    tool_calls: tuple[ToolCall, ...] = ()
    # Parley stopped the upstream at max_tokens (it did not stop by itself);
    # finish_reason is then "length", and the vendor's usage never came.
    cut_off: bool = False
    # A stream that broke after the vendor had counted the prompt (Anthropic
    # counts it up front): the vendor's prompt count, though ``usage`` never came.
    reported: Usage | None = None
    retry_after: float | None = None  # seconds the vendor asked us to wait, if it did

    @property
    def streamed(self) -> bool:
        return self.ttft_ms is not None

    @property
    def can_try_again(self) -> bool:
        """Failed before any output reached the caller, so another attempt cannot duplicate it."""
        return self.status == "failed" and not self.streamed


class UpstreamCall:
    """Iterate :meth:`deltas`; afterwards :attr:`outcome` says how the call ended.

    ``tokens`` counts the way the model does, to cut the reply off at
    ``request.max_tokens`` when the upstream does not stop there itself.
    """

    def __init__(
        self,
        provider: Provider,
        request: ChatRequest,
        *,
        tokens: ModelTokens,
        first_token_timeout: float,
        idle_timeout: float,
        cancel: asyncio.Event,
    ) -> None:
        self._provider = provider
        self._request = request
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._cancel = cancel
        self._cap = TokenCap(request.max_tokens, tokens)
        self._started = 0.0  # all times are the event loop's clock
        self._first_token_at: float | None = None
        self._text: list[str] = []
        self._tool_calls: list[ToolCall] = []
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._outcome: Outcome | None = None
        self._alarm = _Alarm()

    @property
    def outcome(self) -> Outcome:
        if self._outcome is None:
            raise RuntimeError("the call has not finished")
        return self._outcome

    async def deltas(self) -> AsyncGenerator[TextDelta | ToolCall, None]:
        """The text and the tool calls, as they arrive."""
        self._started = asyncio.get_running_loop().time()
        upstream = self._provider.stream(self._request)
        watcher = asyncio.create_task(self._watch_cancel())
        try:
            while self._outcome is None:
                step = await self._next(upstream)
                if isinstance(step, TextDelta) and step.text:
                    text = self._cap.admit(self._text, step.text)
                    if text:
                        if self._first_token_at is None:
                            self._on_output()
                        self._text.append(text)
                        yield step if text is step.text else TextDelta(text)
                    if self._cap.reached:
                        self._stop_at_cap()
                elif isinstance(step, ToolCall):
                    self._on_output()
                    self._tool_calls.append(step)
                    yield step
                elif isinstance(step, Usage):
                    self._usage = step
                elif isinstance(step, Finish):
                    self._finish = step.reason
                elif isinstance(step, _Stop | ProviderError):
                    self._end(step)
        finally:
            if self._outcome is None:
                self._end(_Stop.ABANDONED)
            watcher.cancel()
            self._alarm.disarm()
            # Closing the provider's generator closes the HTTP response, which
            # tells the vendor to stop generating (and billing).
            if isinstance(upstream, AsyncGenerator):
                await upstream.aclose()

    def _on_output(self) -> None:
        if self._first_token_at is None:  # the first text or tool call: TTFT
            self._first_token_at = asyncio.get_running_loop().time()

    def _stop_at_cap(self) -> None:
        # Ending here closes the provider's stream (below), and so the response.
        log.info(
            "%s model %s did not stop at max_tokens=%d; cut off",
            self._provider.name,
            self._request.model,
            self._request.max_tokens,
        )
        self._finish = "length"
        self._end(_Stop.ENDED, cut_off=True)

    def _deadline(self) -> float:
        if self._first_token_at is None:
            return self._started + self._first_token_timeout
        return asyncio.get_running_loop().time() + self._idle_timeout

    async def _next(
        self, upstream: AsyncIterator[StreamEvent]
    ) -> StreamEvent | _Stop | ProviderError:
        """The next event, or why there is none: ended, cancelled or timed out.

        Only the wait for the upstream can be interrupted, never the caller's
        work between events (which runs in the same task while we are suspended).
        """
        if self._cancel.is_set():
            return _Stop.CANCELLED
        cancelling = self._alarm.waiting(self._deadline())
        try:
            return await anext(upstream)
        except asyncio.CancelledError:
            if (rang := self._alarm.rang(cancelling)) is None:
                raise
            return _Stop.CANCELLED if self._cancel.is_set() else rang
        except StopAsyncIteration:
            return _Stop.ENDED
        except ProviderError as error:
            return error
        except Exception as error:
            # A provider bug or an unparseable vendor reply: fail this call, keep serving.
            log.error("provider %s raised unexpectedly", self._provider.name, exc_info=error)
            return ProviderError(f"unexpected error: {type(error).__name__}", transient=False)
        finally:
            self._alarm.stopped_waiting()

    async def _watch_cancel(self) -> None:
        await self._cancel.wait()
        self._alarm.ring(_Stop.CANCELLED)

    def _end(self, stop: _Stop | ProviderError, *, cut_off: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        ttft = None if self._first_token_at is None else _ms(self._first_token_at - self._started)
        status: CallStatus = "failed"
        error: str | None = None
        transient = False
        reported = retry_after = None
        if stop is _Stop.ENDED:
            status = "complete"
        elif stop is _Stop.CANCELLED:
            status = "cancelled"
        elif stop is _Stop.ABANDONED:
            error = "the reply stopped reading the call (a server-side failure)"
        elif stop is _Stop.TIMED_OUT:
            which = "first token" if ttft is None else "next token"
            limit = self._first_token_timeout if ttft is None else self._idle_timeout
            error, transient = f"timed out after {limit:g}s waiting for the {which}", True
        else:
            error, transient = str(stop), stop.transient
            reported, retry_after = stop.usage, stop.retry_after
        self._outcome = Outcome(
            status=status,
            text="".join(self._text),
            usage=self._usage,
            finish_reason=self._finish or ("cancelled" if status == "cancelled" else None),
            error=error,
            transient=transient,
            rejected=isinstance(stop, ProviderError) and ttft is None,
            ttft_ms=ttft,
            latency_ms=_ms(now - self._started),
            tool_calls=tuple(self._tool_calls),
            cut_off=cut_off,
            reported=reported,
            retry_after=retry_after,
        )


class _Alarm:
    """Interrupts the task waiting on the upstream at a deadline, or on demand.

    What ``asyncio.timeout`` does, at a fraction of the cost per event: one
    timer per call, moved only when it would ring too late, where a timeout
    per wait armed and cancelled a timer for every token.
    """

    def __init__(self) -> None:
        self._deadline = float("inf")
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: asyncio.Task[Any] | None = None
        self._rang: _Stop | None = None

    def waiting(self, deadline: float) -> int:
        """The current task starts waiting; returns what :meth:`rang` needs."""
        task = asyncio.current_task()
        assert task is not None
        self._deadline = deadline
        if self._timer is None or self._timer.when() > deadline:
            self._set_timer()
        self._waiting, self._rang = task, None
        return task.cancelling()

    def rang(self, cancelling: int) -> _Stop | None:
        """Why the wait was cancelled, if this alarm did it (else someone else did)."""
        assert self._waiting is not None
        if self._rang is not None and self._waiting.uncancel() <= cancelling:
            return self._rang
        return None

    def stopped_waiting(self) -> None:
        self._waiting = None

    def ring(self, reason: _Stop) -> None:
        if self._waiting is not None and self._rang is None:
            self._rang = reason
            self._waiting.cancel()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set_timer(self) -> None:
        self.disarm()
        self._timer = asyncio.get_running_loop().call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if asyncio.get_running_loop().time() < self._deadline:
            self._set_timer()  # the deadline moved on since the timer was set
        elif self._waiting is not None:
            self.ring(_Stop.TIMED_OUT)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
