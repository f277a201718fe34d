"""Fitting a conversation into a model's context window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parley.llm.base import ChatMessage
from parley.llm.tokens import REPLY_PRIMING_TOKENS, ModelTokens


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    messages: tuple[ChatMessage, ...]
    prompt_tokens: int
    dropped: int  # history messages left out
    estimated: bool


def fit_messages(
    system: str,
    history: Sequence[ChatMessage],
    newest_user: str,
    counter: ModelTokens,
    context_window: int,
    reply_budget: int,
) -> FittedPrompt:
    """The system prompt, as much recent history as fits, and the newest user message.

    History is dropped oldest first and whole messages at a time. The system
    prompt and newest message are always kept, even when they alone are too
    big: refusing or truncating them is the caller's decision.
    """
    head = (ChatMessage("system", system),) if system else ()
    newest = ChatMessage("user", newest_user)
    used = REPLY_PRIMING_TOKENS + sum(counter.count_message(m) for m in (*head, newest))
    available = context_window - reply_budget

    kept: list[ChatMessage] = []
    for message in reversed(history):
        cost = counter.count_message(message)
        if used + cost > available:
            break
        kept.append(message)
        used += cost
    kept.reverse()

    dropped = len(history) - len(kept)
    # A reply without the question it answers confuses models (and Anthropic
    # rejects it), and both vendors reject a tool result without the call it
    # answers, so once we are trimming anyway, trim to a user turn.
    while dropped and kept and kept[0].role in ("assistant", "tool"):
        used -= counter.count_message(kept.pop(0))
        dropped += 1

    return FittedPrompt((*head, *kept, newest), used, dropped, counter.estimated)
