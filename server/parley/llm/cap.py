"""Enforcing ``max_tokens`` ourselves, for upstreams that ignore it.

Some OpenAI-compatible servers (and proxies in front of them) stream past the
limit they were given. The reply must still stop there, and cheaply: the
relay is benchmarked per token, so tokenising every delta is out.

Every token of the tokenizers we count with is at least one UTF-8 byte, so a
text of ``n`` bytes has at most ``n`` tokens: until ``limit`` bytes have
arrived the reply cannot be over. Only then is the text counted, and after
each count the bytes that may arrive unchecked are the tokens still allowed,
so a long reply is counted a few times (the allowance shrinks geometrically),
never once per delta.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.llm.tokens import ModelTokens

# Tokenising two texts apart and together can differ by a token at the join,
# so the count is redone this close to the limit rather than trusted.
MARGIN = 2


class TokenCap:
    """Admits streamed text up to ``limit`` tokens; :attr:`reached` once it cut some off."""

    __slots__ = ("_limit", "_tokens", "_unchecked", "reached")

    def __init__(self, limit: int, tokens: ModelTokens) -> None:
        self._limit = limit
        self._tokens = tokens
        self._unchecked = limit  # UTF-8 bytes that may still arrive without a count
        self.reached = False

    def admit(self, sent: Sequence[str], text: str) -> str:
        """The part of ``text`` that fits after ``sent``: all of it until the cap."""
        # isascii() is O(1) in CPython; only other text pays for an encode.
        self._unchecked -= len(text) if text.isascii() else len(text.encode())
        if self._unchecked >= 0:
            return text
        return self._count(sent, text)

    def _count(self, sent: Sequence[str], text: str) -> str:
        before = "".join(sent)
        whole = before + text
        used = self._tokens.count(whole)
        if used <= self._limit:
            self._unchecked = self._limit - used - MARGIN
            return text
        self.reached = True
        kept = self._tokens.prefix(whole, self._limit)
        # Re-tokenising can pull the limit back inside what was already sent.
        return kept[len(before) :] if len(kept) > len(before) else ""
