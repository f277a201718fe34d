"""Parley's own max_tokens: the cap on upstreams that stream past it."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.llm.base import ModelRef
from parley.llm.cap import TokenCap
from parley.llm.tokens import ModelTokens, TokenCounter, estimate_tokens

os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken-cache")

EXACT = TokenCounter().for_model(ModelRef("openai", "gpt-4o-mini"))
HEURISTIC = ModelTokens(estimate_tokens, estimated=True)  # what is left without encodings


class Counting:
    """The real counter, and how often (and on how much text) it was asked."""

    def __init__(self, tokens: ModelTokens) -> None:
        self.calls: list[int] = []
        self._count = tokens.encode_count
        self.tokens = ModelTokens(self._counted, tokens.estimated, tokens.encode_prefix)

    def _counted(self, text: str) -> int:
        self.calls.append(len(text))
        return self._count(text)


def stream(cap: TokenCap, chunks: list[str]) -> tuple[list[str], int]:
    """What a call would deliver: the admitted text, and how many chunks were read."""
    sent: list[str] = []
    for read, chunk in enumerate(chunks, 1):
        text = cap.admit(sent, chunk)
        if text:
            sent.append(text)
        if cap.reached:
            return sent, read
    return sent, len(chunks)


def test_nothing_is_counted_before_the_bytes_reach_the_cap() -> None:
    counting = Counting(EXACT)
    cap = TokenCap(100, counting.tokens)
    sent, _ = stream(cap, ["word "] * 20)  # 100 bytes: cannot be more than 100 tokens
    assert "".join(sent) == "word " * 20 and not cap.reached
    assert counting.calls == []


def test_a_long_reply_is_counted_a_few_times_not_per_chunk() -> None:
    counting = Counting(EXACT)
    cap = TokenCap(500, counting.tokens)
    sent, read = stream(cap, [" word"] * 5000)

    assert cap.reached and EXACT.count("".join(sent)) == 500
    assert read == 501  # stopped at the chunk that went over
    # The allowance shrinks geometrically: a few dozen counts, not one per chunk.
    assert len(counting.calls) < read // 10


def test_a_chunk_that_crosses_the_cap_is_trimmed_to_it() -> None:
    cap = TokenCap(10, EXACT)
    sent, _ = stream(cap, ["Hi. ", "one two three four five six seven eight nine ten eleven"])
    text = "".join(sent)
    assert cap.reached and EXACT.count(text) == 10
    assert text == "Hi. one two three four five six seven eight"  # "Hi" "." and 8 words


def test_multibyte_text_is_never_cut_inside_a_character() -> None:
    cap = TokenCap(7, EXACT)
    sent, _ = stream(cap, ["東京🚀" * 20])
    text = "".join(sent)
    assert cap.reached and 0 < EXACT.count(text) <= 7
    assert ("東京🚀" * 20).startswith(text) and "\ufffd" not in text


def test_a_count_is_redone_near_the_limit_because_joins_can_cost_a_token() -> None:
    # Two spaces then a digit tokenise differently from two spaces at the end:
    # the 1-byte "0" adds two tokens, one more than "a token is at least a byte" allows.
    before, after = "ü  ", "0"
    assert EXACT.count(before + after) == EXACT.count(before) + len(after) + 1
    limit = EXACT.count(before) + len(after)
    cap = TokenCap(limit, EXACT)
    sent, _ = stream(cap, [before, after])
    assert cap.reached and sent == [before]


def test_without_encodings_the_estimate_caps_too() -> None:
    cap = TokenCap(5, HEURISTIC)
    sent, _ = stream(cap, ["abcdefgh"] * 10)
    assert cap.reached and "".join(sent) == "abcdefgh" * 2 + "abcd"  # 20 characters: 5 tokens


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.text(min_size=1, max_size=12), max_size=60),
    limit=st.integers(min_value=0, max_value=60),
)
def test_what_is_delivered_is_a_prefix_within_the_limit(chunks: list[str], limit: int) -> None:
    for tokens in (EXACT, HEURISTIC):
        cap = TokenCap(limit, tokens)
        sent, _ = stream(cap, chunks)
        whole, delivered = "".join(chunks), "".join(sent)
        assert whole.startswith(delivered)
        assert tokens.count(delivered) <= limit
        assert cap.reached == (delivered != whole)
        if not cap.reached:
            assert tokens.count(whole) <= limit
