"""Fitting history into a context window."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from parley.llm.base import ChatMessage, ModelRef, ToolCall
from parley.llm.context import fit_messages
from parley.llm.tokens import TokenCounter

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")

TOKENS = TokenCounter().for_model(ModelRef("openai", "gpt-4o-mini"))
SYSTEM = "You are a helpful assistant."


def turns(count: int) -> list[ChatMessage]:
    """Alternating user/assistant messages, oldest first, each a few tokens long."""
    return [
        ChatMessage("user" if i % 2 == 0 else "assistant", f"message number {i} " * 3)
        for i in range(count)
    ]


def test_everything_fits() -> None:
    history = turns(4)
    fitted = fit_messages(SYSTEM, history, "newest?", TOKENS, 8192, 512)

    expected = (ChatMessage("system", SYSTEM), *history, ChatMessage("user", "newest?"))
    assert fitted.messages == expected
    assert fitted.dropped == 0
    assert fitted.prompt_tokens == TOKENS.count_messages(expected)
    assert not fitted.estimated


def test_oldest_messages_are_dropped_first() -> None:
    history = turns(20)
    base = TOKENS.count_messages([ChatMessage("system", SYSTEM), ChatMessage("user", "q")])
    room_for_four = sum(TOKENS.count_message(m) for m in history[-4:])
    fitted = fit_messages(SYSTEM, history, "q", TOKENS, base + room_for_four + 100, 100)

    assert fitted.messages[1:-1] == tuple(history[-4:])
    assert fitted.dropped == 16
    assert fitted.prompt_tokens == TOKENS.count_messages(fitted.messages)
    assert fitted.prompt_tokens <= base + room_for_four


def test_trimmed_history_does_not_start_with_a_reply() -> None:
    history = turns(20)  # ends with an assistant message
    base = TOKENS.count_messages([ChatMessage("system", SYSTEM), ChatMessage("user", "q")])
    room_for_three = sum(TOKENS.count_message(m) for m in history[-3:])
    fitted = fit_messages(SYSTEM, history, "q", TOKENS, base + room_for_three, 0)

    assert history[-3].role == "assistant"
    assert fitted.messages[1:-1] == tuple(history[-2:])
    assert fitted.messages[1].role == "user"
    assert fitted.dropped == 18


def test_trimmed_history_does_not_start_with_a_tool_result() -> None:
    call = ToolCall("call_1", "lookup_order", '{"order_id": "1042"}')
    history = [
        *turns(6),
        ChatMessage("user", "Where is order 1042?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"status": "shipped"}', tool_call_id="call_1"),
        ChatMessage("assistant", "It has shipped."),
        ChatMessage("user", "Thanks."),
        ChatMessage("assistant", "You are welcome."),
    ]
    base = TOKENS.count_messages([ChatMessage("system", SYSTEM), ChatMessage("user", "q")])
    room_from_the_result = sum(TOKENS.count_message(m) for m in history[-4:])
    fitted = fit_messages(SYSTEM, history, "q", TOKENS, base + room_from_the_result, 0)

    # The result (without its call) and the reply to it go; both vendors reject an orphan.
    assert fitted.messages[1:-1] == tuple(history[-2:])
    assert fitted.dropped == len(history) - 2


def test_tool_calls_count_towards_the_prompt() -> None:
    call = ToolCall("call_1", "lookup_order", '{"order_id": "1042"}')
    asking = ChatMessage("assistant", "", tool_calls=(call,))
    assert TOKENS.count_message(asking) == (
        TOKENS.count_message(ChatMessage("assistant", ""))
        + TOKENS.count("lookup_order")
        + TOKENS.count(call.arguments)
    )


def test_untrimmed_history_may_start_with_a_greeting() -> None:
    history = [ChatMessage("assistant", "Hi! How can I help?")]
    fitted = fit_messages(SYSTEM, history, "q", TOKENS, 8192, 100)
    assert fitted.messages[1] == history[0] and fitted.dropped == 0


def test_system_and_newest_are_kept_even_when_too_big() -> None:
    newest = "long question " * 200
    fitted = fit_messages(SYSTEM, turns(6), newest, TOKENS, 100, 50)

    assert fitted.messages == (ChatMessage("system", SYSTEM), ChatMessage("user", newest))
    assert fitted.dropped == 6
    assert fitted.prompt_tokens == TOKENS.count_messages(fitted.messages) > 100


def test_empty_system_prompt_is_left_out() -> None:
    fitted = fit_messages("", [], "hello", TOKENS, 8192, 100)
    assert fitted.messages == (ChatMessage("user", "hello"),)


def test_estimated_counts_are_flagged() -> None:
    claude = TokenCounter().for_model(ModelRef("anthropic", "claude-haiku-4-5"))
    assert fit_messages(SYSTEM, turns(2), "q", claude, 8192, 100).estimated


@given(
    lengths=st.lists(st.integers(min_value=0, max_value=60), max_size=30),
    window=st.integers(min_value=50, max_value=2000),
)
def test_fitted_prompt_is_a_recent_suffix_within_budget(lengths: list[int], window: int) -> None:
    history = [
        ChatMessage("user" if i % 2 == 0 else "assistant", "word " * n)
        for i, n in enumerate(lengths)
    ]
    fitted = fit_messages(SYSTEM, history, "newest", TOKENS, window, 20)
    kept = fitted.messages[1:-1]

    assert fitted.messages[0].role == "system" and fitted.messages[-1].content == "newest"
    assert kept == tuple(history[len(history) - len(kept) :])
    assert fitted.dropped == len(history) - len(kept)
    assert fitted.prompt_tokens == TOKENS.count_messages(fitted.messages)
    if fitted.dropped:
        assert not kept or kept[0].role == "user"
        minimal = TOKENS.count_messages([fitted.messages[0], fitted.messages[-1]])
        assert fitted.prompt_tokens <= max(window - 20, minimal)
