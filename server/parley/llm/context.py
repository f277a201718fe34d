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
    kept, used = _recent(history, counter, used, context_window - reply_budget)
    dropped = len(history) - len(kept)
    return FittedPrompt((*head, *kept, newest), used, dropped, counter.estimated)


def refit(messages: Sequence[ChatMessage], counter: ModelTokens, available: int) -> FittedPrompt:
    """A fitted prompt fitted again, to ``available`` tokens (a fallback model's smaller
    window, or a tool round's longer history).

    The leading system turns, the latest user turn and everything after it
    (the tool round under way) are kept; the history between is trimmed as
    :func:`fit_messages` trims it.
    """
    start = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    end = next(
        (i for i in range(len(messages) - 1, start - 1, -1) if messages[i].role == "user"), start
    )
    head, history, tail = messages[:start], messages[start:end], messages[end:]
    used = REPLY_PRIMING_TOKENS + sum(counter.count_message(m) for m in (*head, *tail))
    kept, used = _recent(history, counter, used, available)
    dropped = len(history) - len(kept)
    return FittedPrompt((*head, *kept, *tail), used, dropped, counter.estimated)


def _recent(
    history: Sequence[ChatMessage], counter: ModelTokens, used: int, available: int
) -> tuple[list[ChatMessage], int]:
    """The most recent whole messages of ``history`` that fit, and the tokens then used."""
    kept: list[ChatMessage] = []
    for message in reversed(history):
        cost = counter.count_message(message)
        if used + cost > available:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    # A reply without the question it answers confuses models (and Anthropic
    # rejects it), and both vendors reject a tool result without the call it
    # answers, so once we are trimming anyway, trim to a user turn.
    while len(kept) < len(history) and kept and kept[0].role in ("assistant", "tool"):
        used -= counter.count_message(kept.pop(0))
    return kept, used
