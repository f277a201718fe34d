"""Classifier rules at work: every rule's call on one message, in flight with the reply's.

The reply task starts a :class:`Screening` next to its prefetched upstream
request, so a message that passes costs no time to first token beyond the
slower of the two. Each call ends by its rule's ``timeout`` at the latest and
never raises: a timeout, a failed call or an answer that is neither YES nor
NO is a :class:`Judgement` without an answer, which the rule's ``on_error``
turns into a pass or a catch. Every call is recorded (``purpose`` is
``"classifier"``) so it gets its usage row and counts against the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from parley.errors import UpstreamUnavailable
from parley.llm.base import CallRecord, CallStatus, ModelRef, ProviderError
from parley.llm.moderation import ModerationClient
from parley.llm.router import CallFinished, LLMRouter
from parley.rules.classifier import (
    ANSWER_TOKENS,
    ClassifierRule,
    ClassifierVerdict,
    Judgement,
    ModerationEndpoint,
    decide,
    excerpt,
    moderation_flagged,
    parse_answer,
    self_check_messages,
)

log = logging.getLogger(__name__)

# The provider name moderation calls are recorded under (llm_usage.provider).
MODERATION_PROVIDER = "moderation"


@dataclass(frozen=True, slots=True)
class Screened:
    """Every classifier's say on a message, and what their calls cost."""

    verdict: ClassifierVerdict
    calls: tuple[CallRecord, ...]


class Classifiers:
    """Runs classifier rules: self-checks through the router, moderation endpoints directly."""

    def __init__(self, router: LLMRouter, moderation: ModerationClient) -> None:
        self._router = router
        self._moderation = moderation

    def start(self, rules: Sequence[ClassifierRule], text: str) -> Screening:
        """Send every rule's call now; :meth:`Screening.result` waits for them."""
        return Screening(
            [
                asyncio.create_task(self._judge(rule, text), name=f"classifier-{rule.id}")
                for rule in rules
            ]
        )

    async def aclose(self) -> None:
        await self._moderation.aclose()

    async def _judge(self, rule: ClassifierRule, text: str) -> tuple[Judgement, list[CallRecord]]:
        calls: list[CallRecord] = []
        try:
            if rule.moderation is not None:
                judgement = await self._moderate(rule, rule.moderation, text, calls)
            else:
                judgement = await self._self_check(rule, text, calls)
        except Exception as error:  # a bug here must not take the reply down with it
            log.exception("classifier %s failed unexpectedly", rule.id)
            judgement = Judgement(rule, None, f"unexpected error: {type(error).__name__}")
        if judgement.flagged is None:
            then = "blocked" if rule.on_error == "block" else "allowed"
            log.warning("classifier %s gave no answer (%s); %s", rule.id, judgement.error, then)
        return judgement, [dataclasses.replace(call, purpose="classifier") for call in calls]

    async def _self_check(
        self, rule: ClassifierRule, text: str, calls: list[CallRecord]
    ) -> Judgement:
        assert rule.question is not None, "validated: model classifiers have a question"
        nonce = secrets.token_hex(8)
        messages = self_check_messages(rule.question, excerpt(text, rule.max_chars), nonce)
        # The timeout cancels through the router, so the call ends as "cancelled"
        # with its usage estimated, instead of vanishing with a cancelled task.
        expired = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(rule.timeout, expired.set)
        events = self._router.stream(
            (rule.model_ref,),
            messages,
            max_tokens=ANSWER_TOKENS,
            temperature=0.0,
            cancel=expired,
            abandoned=calls.append,
        )
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, CallFinished):
                        calls.append(event.record)
        except UpstreamUnavailable:
            pass  # every attempt failed; the records below say how
        finally:
            timer.cancel()
        last = calls[-1] if calls else None
        if expired.is_set():
            error = f"timed out after {rule.timeout:g}s"
            if last is not None and last.status == "cancelled":
                calls[-1] = dataclasses.replace(last, error=error)  # say why, in its usage row
            return Judgement(rule, None, error)
        if last is None or last.status != "complete":
            return Judgement(rule, None, last.error if last else "no call was made")
        flagged = parse_answer(last.text)
        if flagged is None:  # not quoted: a model may echo the user's words
            return Judgement(rule, None, f"answered neither YES nor NO ({len(last.text)} chars)")
        return Judgement(rule, flagged)

    async def _moderate(
        self,
        rule: ClassifierRule,
        endpoint: ModerationEndpoint,
        text: str,
        calls: list[CallRecord],
    ) -> Judgement:
        started = asyncio.get_running_loop().time()
        model = ModelRef(MODERATION_PROVIDER, endpoint.model or "default")
        try:
            async with asyncio.timeout(rule.timeout):
                answer = await self._moderation.moderate(
                    endpoint.url,
                    excerpt(text, rule.max_chars),
                    model=endpoint.model,
                    api_key_env=endpoint.api_key_env,
                )
        except TimeoutError:
            error = f"timed out after {rule.timeout:g}s"
            calls.append(_moderation_call(model, "cancelled", started, error))
            return Judgement(rule, None, error)
        except ProviderError as failure:
            calls.append(_moderation_call(model, "failed", started, str(failure)))
            return Judgement(rule, None, str(failure))
        if isinstance(answered := answer.get("model"), str) and answered:
            model = ModelRef(MODERATION_PROVIDER, answered)
        calls.append(_moderation_call(model, "complete", started, None))
        try:
            return Judgement(rule, moderation_flagged(answer, endpoint.categories))
        except ValueError as error:
            return Judgement(rule, None, f"unexpected moderation result: {error}")


class Screening:
    """The classifier calls on one message, under way."""

    def __init__(self, tasks: Sequence[asyncio.Task[tuple[Judgement, list[CallRecord]]]]) -> None:
        self._tasks = tuple(tasks)

    async def result(self) -> Screened:
        """Wait for every classifier (each is bounded by its timeout)."""
        judged = await asyncio.gather(*self._tasks)
        verdict = decide(judgement for judgement, _ in judged)
        return Screened(verdict, tuple(call for _, calls in judged for call in calls))

    async def aclose(self) -> None:
        """Stop the calls and drop their records: for a reply that ends without its gate
        (its turn was not stored, or it failed first)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _moderation_call(
    model: ModelRef, status: CallStatus, started: float, error: str | None
) -> CallRecord:
    # Moderation endpoints are not billed by the token (OpenAI's is free):
    # the row records the call, its latency and outcome, at no cost.
    latency = round((asyncio.get_running_loop().time() - started) * 1000)
    return CallRecord(model, status, latency_ms=latency, error=error)
