"""Token counting for budgets, context fitting and usage estimates.

Counts are exact for OpenAI models (tiktoken ships their encodings) and an
estimate for everything else. tiktoken downloads encodings on first use; when
that is impossible (offline, no cache) we fall back to a character estimate
rather than failing a chat, and say so once in the log.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import tiktoken

from parley.llm.base import ChatMessage, ModelRef, ToolCall, ToolSpec
from parley.llm.toolwire import spec_json

log = logging.getLogger(__name__)

O200K = "o200k_base"
CL100K = "cl100k_base"
COUNT_CACHE_SIZE = 4096  # token counts of recent texts (system prompts, history) kept

# OpenAI's chat format wraps every message in a few control tokens and primes
# the reply with a few more (see OpenAI's "counting tokens" cookbook).
TOKENS_PER_MESSAGE = 4
REPLY_PRIMING_TOKENS = 3

# Roughly four characters per token for English text with BPE tokenizers.
CHARS_PER_TOKEN = 4

_O200K_MODELS = re.compile(r"^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4)\b")
_OPENAI_MODELS = re.compile(r"^(gpt-|chatgpt-|o\d|text-|davinci|babbage)")


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that :func:`estimate_tokens` puts within ``limit``."""
    return text[: max(limit, 0) * CHARS_PER_TOKEN]


@dataclass(frozen=True, slots=True)
class ModelTokens:
    """Counts tokens the way one model does; ``estimated`` when only approximately."""

    encode_count: Callable[[str], int]
    estimated: bool
    encode_prefix: Callable[[str, int], str] = estimate_prefix

    def count(self, text: str) -> int:
        return self.encode_count(text) if text else 0

    def prefix(self, text: str, limit: int) -> str:
        """The longest prefix of ``text`` that is at most ``limit`` tokens."""
        return self.encode_prefix(text, limit) if text else text

    def count_message(self, message: ChatMessage) -> int:
        calls = self.count_calls(message.tool_calls) if message.tool_calls else 0
        return TOKENS_PER_MESSAGE + self.count(message.content) + calls

    def count_messages(self, messages: Sequence[ChatMessage]) -> int:
        return REPLY_PRIMING_TOKENS + sum(self.count_message(m) for m in messages)

    def count_calls(self, calls: Sequence[ToolCall]) -> int:
        """What the model wrote to ask for these calls: names and arguments."""
        return sum(self.count(call.name) + self.count(call.arguments) for call in calls)

    def count_tools(self, tools: Sequence[ToolSpec]) -> int:
        """What the tool specs add to a prompt (vendors render them as JSON-like text)."""
        return sum(self.count(spec_json(spec)) for spec in tools)


def encoding_for(model: ModelRef) -> tuple[str, bool]:
    """The tiktoken encoding for ``model`` and whether counts are only an estimate."""
    name = model.name.lower()
    if model.provider == "openai":
        if _O200K_MODELS.match(name):
            return O200K, False
        # Ollama/vLLM models use their own tokenizers; cl100k is a close stand-in.
        return CL100K, not _OPENAI_MODELS.match(name)
    if model.provider == "demo":
        return CL100K, False
    return CL100K, True


class TokenCounter:
    """Hands out per-model counters; loads each encoding once per instance."""

    def __init__(self) -> None:
        self._encodings: dict[str, tiktoken.Encoding | None] = {}
        self._exact: dict[str, ModelTokens] = {}  # per encoding: its one count cache
        self._families: dict[str, str] = {}
        self._lock = threading.Lock()

    def count_as(self, families: Mapping[str, str]) -> None:
        """Count a named provider's models as its family's: azure:gpt-4o as openai:gpt-4o."""
        self._families.update(families)

    def for_model(self, model: ModelRef) -> ModelTokens:
        family = self._families.get(model.provider)
        if family is not None:
            model = ModelRef(family, model.name)
        encoding_name, estimated = encoding_for(model)
        encoding = self._encoding(encoding_name)
        if encoding is None:
            return ModelTokens(estimate_tokens, estimated=True)
        exact = self._exact.get(encoding_name)
        if exact is None:
            exact = ModelTokens(_counter(encoding), False, _prefixer(encoding))
            self._exact[encoding_name] = exact
        if estimated:  # the same counts, standing in for another tokenizer
            return ModelTokens(exact.encode_count, True, exact.encode_prefix)
        return exact

    def preload(self, names: Sequence[str] = (O200K, CL100K)) -> None:
        """Load encodings now (blocking), so the first count does not have to."""
        for name in names:
            self._encoding(name)

    def _encoding(self, name: str) -> tiktoken.Encoding | None:
        with self._lock:
            if name not in self._encodings:
                self._encodings[name] = _load(name)
            return self._encodings[name]


def _counter(encoding: tiktoken.Encoding) -> Callable[[str], int]:
    # Every message re-counts the system prompt and the history it sends. The
    # cache is keyed by the text's hash, not the text, so it holds no prompts.
    counts: OrderedDict[tuple[int, int], int] = OrderedDict()

    def count(text: str) -> int:
        key = (hash(text), len(text))
        known = counts.get(key)
        if known is not None:
            return known
        # User text may contain "<|endoftext|>"; count it as text, never raise.
        tokens = len(encoding.encode(text, disallowed_special=()))
        if len(counts) >= COUNT_CACHE_SIZE:
            counts.popitem(last=False)  # the oldest entry
        counts[key] = tokens
        return tokens

    return count


def _prefixer(encoding: tiktoken.Encoding) -> Callable[[str, int], str]:
    def prefix(text: str, limit: int) -> str:
        tokens = encoding.encode(text, disallowed_special=())
        if len(tokens) <= limit:
            return text
        # The first tokens' bytes can end inside a character; drop that partial character.
        return encoding.decode_bytes(tokens[: max(limit, 0)]).decode("utf-8", "ignore")

    return prefix


_fallback_logged = threading.Event()


def _load(name: str) -> tiktoken.Encoding | None:
    try:
        return tiktoken.get_encoding(name)
    except Exception as error:  # network, cache and hash errors all mean "unavailable"
        # Once per process, not per counter: a deployment without the files
        # should not log this on every start of every worker object.
        if not _fallback_logged.is_set():
            _fallback_logged.set()
            log.warning(
                "tiktoken encoding %s is unavailable (%s); token counts are estimated "
                "from characters. Set TIKTOKEN_CACHE_DIR to a directory with the "
                "encoding files to count exactly.",
                name,
                type(error).__name__,
            )
        return None
