"""The LLM router: retries, fallback between models, usage records.

This is what the reply task calls. It streams text and tool calls from the
first model that works, retrying transient failures with backoff (or after
the vendor's ``Retry-After``) before any output has been sent, and describes
every upstream call with one :class:`CallFinished`.

Models of a fallback chain may have different context windows: the prompt
arrives fitted to the first model's, and is fitted again, dropping more of
the oldest history, for any model whose window is smaller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parley.errors import UpstreamUnavailable
from parley.llm.base import (
    CallRecord,
    ChatMessage,
    ChatRequest,
    ModelRef,
    Provider,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from parley.llm.call import Outcome, UpstreamCall
from parley.llm.context import refit
from parley.llm.demo import DemoProvider
from parley.llm.models import PriceTable
from parley.llm.providers import build_providers, load_specs
from parley.llm.tokens import ModelTokens, TokenCounter
from parley.observability import metrics
from parley.observability.tracing import NO_TRACING, Span, Tracing

if TYPE_CHECKING:
    from parley.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter, so retrying clients spread out."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10
    first_token: float = 60
    idle: float = 60


@dataclass(frozen=True)
class CallFinished:
    record: CallRecord


RouterEvent = TextDelta | ToolCall | CallFinished
# Waits between attempts: True if ``cancel`` was set first. Tests pass a fake clock.
Pause = Callable[[asyncio.Event, float], Awaitable[bool]]


class LLMRouter:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        prices: PriceTable,
        counter: TokenCounter,
        policy: RetryPolicy,
        timeouts: Timeouts,
        *,
        rng: random.Random | None = None,
        tracing: Tracing = NO_TRACING,
        pause: Pause | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._prices = prices
        self._counter = counter
        self._policy = policy
        self._timeouts = timeouts
        self._rng = rng or random.Random()
        self._tracing = tracing
        self._pause = pause or _cancelled_within
        # groq:llama-3.3-70b has no price entry of its own unless the prices file
        # gives it one; azure:gpt-4o and bedrock:claude-… are their family's models.
        self._families = {
            name: provider.family
            for name, provider in self._providers.items()
            if provider.family != name
        }
        counter.count_as(self._families)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        tracing: Tracing = NO_TRACING,
        environ: Mapping[str, str] | None = None,
    ) -> LLMRouter:
        """Providers from the environment and the catalog's ``providers.yaml``."""
        environ = os.environ if environ is None else environ
        counter = TokenCounter()
        providers: dict[str, Provider] = {
            "demo": DemoProvider(settings.demo_delay_ms / 1000, counter=counter),
            **build_providers(settings, load_specs(settings.catalog, environ), environ),
        }
        prices = (
            PriceTable.load(settings.prices_file) if settings.prices_file else PriceTable.defaults()
        )
        policy = RetryPolicy(attempts=settings.retry_attempts, base_delay=settings.retry_base_delay)
        timeouts = Timeouts(
            connect=settings.connect_timeout,
            first_token=settings.first_token_timeout,
            idle=settings.idle_timeout,
        )
        return cls(providers, prices, counter, policy, timeouts, tracing=tracing)

    @property
    def counter(self) -> TokenCounter:
        return self._counter

    def has_provider(self, name: str) -> bool:
        return name in self._providers

    async def warm_up(self) -> None:
        """Load token encodings off the event loop; call once at start-up.

        Loading reads (or, without a cache, downloads) a few MB; doing it
        lazily would stall the first chat and every stream sharing the loop.
        """
        await asyncio.to_thread(self._counter.preload)

    def context_window(self, model: ModelRef) -> int:
        return self._prices.context_window(self._priced(model))

    def cost_usd(self, model: ModelRef, prompt_tokens: int, completion_tokens: int) -> float:
        """What a call to ``model`` with these counts costs, at the configured prices."""
        return self._prices.cost_usd(self._priced(model), prompt_tokens, completion_tokens)

    def _priced(self, model: ModelRef) -> ModelRef:
        """The model whose price entry ``model`` has: its own, else its provider family's."""
        family = self._families.get(model.provider)
        if family is None or self._prices.is_known(model):
            return model
        as_family = ModelRef(family, model.name)
        # Unknown either way: the warning should name the model as configured.
        return as_family if self._prices.is_known(as_family) else model

    async def stream(
        self,
        models: Sequence[ModelRef],
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float | None,
        cancel: asyncio.Event,
        tools: Sequence[ToolSpec] = (),
        may_call_tools: bool = True,
        abandoned: Callable[[CallRecord], None] | None = None,
    ) -> AsyncGenerator[RouterEvent, None]:
        """Text and tool calls from the first model that works, and one ``CallFinished``
        per upstream call.

        ``tools`` are offered to the model (described only, when not
        ``may_call_tools``); the tool calls it makes come whole, after any
        text of the same call. ``abandoned`` receives the record of a call cut
        short by closing this stream, which can yield nothing more then.
        Raises :class:`UpstreamUnavailable` when every model failed before
        any output. Once output has been
        streamed, failures end the stream normally (with a failed record)
        because retrying would repeat it. A model that streams past
        ``max_tokens`` is cut off there (its record says ``cut_off``).
        """
        for index, model in enumerate(models):
            provider = self._providers.get(model.provider)
            if provider is None:
                log.warning("model %s skipped: provider not configured", model)
                yield CallFinished(CallRecord(model, "failed", error="provider not configured"))
                continue
            tokens = self._counter.for_model(model)
            fitted = self._fit(model, tokens, messages, tools, max_tokens)
            request = ChatRequest(
                model.name, fitted, max_tokens, temperature, tuple(tools), may_call_tools
            )
            for attempt in range(1, self._policy.attempts + 1):
                if cancel.is_set():
                    return
                call = UpstreamCall(
                    provider,
                    request,
                    tokens=tokens,
                    first_token_timeout=self._timeouts.first_token,
                    idle_timeout=self._timeouts.idle,
                    cancel=cancel,
                )
                with self._tracing.upstream_call(model, request) as span:
                    try:
                        async with contextlib.aclosing(call.deltas()) as deltas:
                            async for delta in deltas:
                                yield delta
                    except GeneratorExit:
                        # Closed mid-call (the reply failed around it): the call was
                        # still made and billed, so it is still recorded.
                        record = self._finished(model, request, call.outcome, span)
                        if abandoned is not None:
                            abandoned(record)
                        raise
                    outcome = call.outcome
                    record = self._finished(model, request, outcome, span)
                yield CallFinished(record)
                if not outcome.can_try_again:
                    return
                if not outcome.transient or attempt == self._policy.attempts:
                    _log_fallback(model, outcome, next_model=_at(models, index + 1))
                    break
                delay = self._policy.backoff(attempt, self._rng)
                if outcome.retry_after is not None:
                    # The vendor said when: sooner is refused again. A wait past the
                    # first-token timeout is longer than a client is kept waiting for
                    # one call, so the next model is the better bet.
                    if outcome.retry_after > self._timeouts.first_token:
                        _log_fallback(
                            model,
                            outcome,
                            next_model=_at(models, index + 1),
                            why=f"Retry-After {outcome.retry_after:g}s is too long",
                        )
                        break
                    delay = max(delay, outcome.retry_after)
                metrics.upstream_retry(model.provider)
                log.warning(
                    "model %s attempt %d/%d failed (%s); retrying in %.2fs",
                    model,
                    attempt,
                    self._policy.attempts,
                    outcome.error,
                    delay,
                )
                if await self._pause(cancel, delay):
                    return
        raise UpstreamUnavailable()

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()

    def _fit(
        self,
        model: ModelRef,
        tokens: ModelTokens,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        max_tokens: int,
    ) -> tuple[ChatMessage, ...]:
        """``messages`` as they fit ``model``'s window with room for the reply."""
        available = self.context_window(model) - max_tokens - tokens.count_tools(tools)
        if tokens.count_messages(messages) <= available:
            return tuple(messages)
        fitted = refit(messages, tokens, available)
        if fitted.dropped:
            log.info(
                "model %s: %d older messages left out to fit its window", model, fitted.dropped
            )
        return fitted.messages

    def _finished(
        self, model: ModelRef, request: ChatRequest, outcome: Outcome, span: Span
    ) -> CallRecord:
        """The call's record, also counted and written to its span."""
        record = self._record(model, request, outcome)
        metrics.upstream_call(model.provider, outcome)
        span.finish_call(record)
        return record

    def _record(self, model: ModelRef, request: ChatRequest, outcome: Outcome) -> CallRecord:
        prompt, completion, estimated = self._tokens(model, request, outcome)
        return CallRecord(
            model=model,
            status=outcome.status,
            prompt_tokens=prompt,
            completion_tokens=completion,
            estimated=estimated,
            cost_usd=self.cost_usd(model, prompt, completion),
            ttft_ms=outcome.ttft_ms,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            finish_reason=outcome.finish_reason,
            text=outcome.text,
            tool_calls=outcome.tool_calls,
            cut_off=outcome.cut_off,
        )

    def _tokens(
        self, model: ModelRef, request: ChatRequest, outcome: Outcome
    ) -> tuple[int, int, bool]:
        """Prompt and completion tokens, and whether they are our estimate, not the vendor's."""
        # A cut-off call never has the vendor's count: it comes at the end of the
        # stream, which we closed. Had it come, it would include what we cut off.
        if outcome.usage is not None and not outcome.cut_off:
            return outcome.usage.prompt_tokens, outcome.usage.completion_tokens, False
        if outcome.rejected:
            return 0, 0, False  # the vendor refused the request; nothing was generated
        # Cancelled, cut off, broken, or a server that does not report usage: count
        # ourselves, only what reached the caller; a prompt the vendor counted before
        # the stream broke keeps the vendor's count.
        tokens = self._counter.for_model(model)
        if outcome.reported is not None:
            prompt = outcome.reported.prompt_tokens
        else:
            prompt = tokens.count_messages(request.messages) + tokens.count_tools(request.tools)
        completion = tokens.count(outcome.text) + tokens.count_calls(outcome.tool_calls)
        return prompt, completion, True


def _at(models: Sequence[ModelRef], index: int) -> ModelRef | None:
    return models[index] if index < len(models) else None


def _log_fallback(
    model: ModelRef, outcome: Outcome, next_model: ModelRef | None, why: str | None = None
) -> None:
    if next_model is not None:
        metrics.upstream_fallback(model.provider)
    then = f"falling back to {next_model}" if next_model else "no model left to try"
    log.warning("model %s failed (%s); %s%s", model, outcome.error, f"{why}; " if why else "", then)


async def _cancelled_within(cancel: asyncio.Event, seconds: float) -> bool:
    """Sleep for ``seconds`` unless ``cancel`` is set first; True if it was."""
    try:
        await asyncio.wait_for(cancel.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
