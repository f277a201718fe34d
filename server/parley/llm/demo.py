"""An offline stand-in model, so Parley runs before any API key is configured."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from parley.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ModelRef,
    StreamEvent,
    TextDelta,
    Usage,
)
from parley.llm.tokens import TokenCounter

LABEL = "[Demo model — offline]"
SUMMARY_CHARS = 80

# Words with their trailing whitespace, so the pieces concatenate to the exact reply.
_PIECES = re.compile(r"\s*\S+\s*")


def demo_reply(messages: Sequence[ChatMessage]) -> str:
    """The deterministic reply to a conversation: a label, an echo, and setup help."""
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    echo = f"You said: “{summarise(last_user)}”." if last_user.strip() else "You said nothing."
    return (
        f"{LABEL} {echo} This is a canned reply so you can try Parley without a language model. "
        "To talk to a real model, set OPENAI_API_KEY or ANTHROPIC_API_KEY, or point "
        "OPENAI_BASE_URL at an OpenAI-compatible server such as Ollama, vLLM or LM Studio, "
        "then restart Parley."
    )


def summarise(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SUMMARY_CHARS else flat[: SUMMARY_CHARS - 1].rstrip() + "…"


class DemoProvider:
    name = "demo"

    def __init__(self, delay_seconds: float = 0.0, *, counter: TokenCounter | None = None) -> None:
        self._delay = delay_seconds
        self._counter = counter or TokenCounter()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        tokens = self._counter.for_model(ModelRef(self.name, request.model))
        sent = ""
        finish = "stop"
        for piece in _PIECES.findall(demo_reply(request.messages)):
            if tokens.count(sent + piece) > request.max_tokens:
                finish = "length"
                break
            if sent and self._delay:
                await asyncio.sleep(self._delay)  # pacing that looks like a real model
            sent += piece
            yield TextDelta(piece)
        yield Usage(tokens.count_messages(request.messages), tokens.count(sent))
        yield Finish(finish)

    async def aclose(self) -> None:
        return None
