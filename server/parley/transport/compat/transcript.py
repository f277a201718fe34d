"""A conversation as a stateless API's caller sends it: the history, then the new turn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from parley.errors import TooLarge
from parley.llm.base import ChatMessage
from parley.transport.compat.errors import InvalidParam

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Transcript:
    """The caller's conversation: the history before the new turn, and its text."""

    history: tuple[ChatMessage, ...]
    text: str

    @classmethod
    def of(cls, turns: Sequence[tuple[Role, str]], *, max_chars: int) -> Transcript:
        """``turns`` oldest first (the vendor's system text already set aside); the
        last one is the new user message. Empty turns carry nothing and are left out."""
        if not turns or turns[-1][0] != "user":
            raise InvalidParam("The last message must be the user's.", param="messages")
        longest = max(len(text) for _, text in turns)
        if longest > max_chars:
            raise TooLarge(
                f"A message has {longest} characters; messages are limited to {max_chars}."
            )
        text = turns[-1][1]
        if not text.strip():
            raise InvalidParam("The last message has no text.", param="messages")
        history = tuple(ChatMessage(role, content) for role, content in turns[:-1] if content)
        return cls(history, text)
