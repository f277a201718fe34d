"""What we know about models: context window and price per million tokens.

Defaults cover the common OpenAI and Anthropic models; operators override or
extend them with a YAML/JSON file (``PARLEY_PRICES_FILE``). Dated variants
such as ``gpt-4o-mini-2024-07-18`` match their family by prefix.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from parley.llm.base import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    context_window: int
    input_per_million: float
    output_per_million: float


# Unknown models are free and small: under-charging beats refusing to chat,
# and a small window keeps prompts safe for local models.
UNKNOWN_MODEL = ModelFacts(context_window=8192, input_per_million=0.0, output_per_million=0.0)

WILDCARD = "*"

DEFAULT_FACTS: Mapping[str, ModelFacts] = {
    "openai:gpt-4o": ModelFacts(128_000, 2.50, 10.00),
    "openai:chatgpt-4o": ModelFacts(128_000, 5.00, 15.00),
    "openai:gpt-4o-mini": ModelFacts(128_000, 0.15, 0.60),
    "openai:gpt-4.1": ModelFacts(1_047_576, 2.00, 8.00),
    "openai:gpt-4.1-mini": ModelFacts(1_047_576, 0.40, 1.60),
    "openai:gpt-4.1-nano": ModelFacts(1_047_576, 0.10, 0.40),
    "openai:gpt-5": ModelFacts(400_000, 1.25, 10.00),
    "openai:gpt-5-mini": ModelFacts(400_000, 0.25, 2.00),
    "openai:gpt-5-nano": ModelFacts(400_000, 0.05, 0.40),
    "openai:o1": ModelFacts(200_000, 15.00, 60.00),
    "openai:o3": ModelFacts(200_000, 2.00, 8.00),
    "openai:o3-mini": ModelFacts(200_000, 1.10, 4.40),
    "openai:o4-mini": ModelFacts(200_000, 1.10, 4.40),
    "openai:gpt-4-turbo": ModelFacts(128_000, 10.00, 30.00),
    "openai:gpt-4": ModelFacts(8_192, 30.00, 60.00),
    "openai:gpt-3.5-turbo": ModelFacts(16_385, 0.50, 1.50),
    "anthropic:claude-sonnet-4-6": ModelFacts(200_000, 3.00, 15.00),
    "anthropic:claude-sonnet-4-5": ModelFacts(200_000, 3.00, 15.00),
    "anthropic:claude-sonnet-4": ModelFacts(200_000, 3.00, 15.00),
    "anthropic:claude-opus-4-5": ModelFacts(200_000, 5.00, 25.00),
    "anthropic:claude-opus-4-1": ModelFacts(200_000, 15.00, 75.00),
    "anthropic:claude-opus-4": ModelFacts(200_000, 15.00, 75.00),
    "anthropic:claude-haiku-4-5": ModelFacts(200_000, 1.00, 5.00),
    "anthropic:claude-3-7-sonnet": ModelFacts(200_000, 3.00, 15.00),
    "anthropic:claude-3-5-sonnet": ModelFacts(200_000, 3.00, 15.00),
    "anthropic:claude-3-5-haiku": ModelFacts(200_000, 0.80, 4.00),
    "demo:*": ModelFacts(128_000, 0.0, 0.0),
    # Embedding models (knowledge bases): input tokens only; the window is the input limit.
    "openai:text-embedding-3-small": ModelFacts(8_191, 0.02, 0.0),
    "openai:text-embedding-3-large": ModelFacts(8_191, 0.13, 0.0),
    "openai:text-embedding-ada-002": ModelFacts(8_191, 0.10, 0.0),
}

_FIELDS = {"input_per_million", "output_per_million", "context_window"}


class PriceTable:
    """Looks up :class:`ModelFacts` for a model; logs each unknown model once."""

    def __init__(self, entries: Mapping[str, ModelFacts]) -> None:
        self._entries = {_normalise(key): facts for key, facts in entries.items()}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def defaults(cls) -> PriceTable:
        return cls(DEFAULT_FACTS)

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        """Defaults with the entries of ``path`` (YAML or JSON) merged over them."""
        defaults = cls.defaults()
        entries = dict(DEFAULT_FACTS)
        for key, raw in _read_mapping(path).items():
            name = _entry_name(path, key)
            # A dated variant without its own window inherits its family's.
            base = defaults._lookup(ModelRef.parse(name)) or UNKNOWN_MODEL
            entries[name] = _parse_entry(path, key, raw, base)
        return cls(entries)

    def facts(self, model: ModelRef | str) -> ModelFacts:
        ref = ModelRef.parse(model) if isinstance(model, str) else model
        found = self._lookup(ref)
        if found is not None:
            return found
        self._warn_unknown(ref)
        return UNKNOWN_MODEL

    def is_known(self, model: ModelRef) -> bool:
        return self._lookup(model) is not None

    def context_window(self, model: ModelRef | str) -> int:
        return self.facts(model).context_window

    def cost_usd(self, model: ModelRef | str, prompt_tokens: int, completion_tokens: int) -> float:
        facts = self.facts(model)
        return (
            prompt_tokens * facts.input_per_million + completion_tokens * facts.output_per_million
        ) / 1_000_000

    def _lookup(self, model: ModelRef) -> ModelFacts | None:
        provider, name = model.provider.lower(), model.name.lower()
        exact = self._entries.get(f"{provider}:{name}")
        if exact is not None:
            return exact
        # Longest family prefix wins, so gpt-4o-mini-2024-07-18 is gpt-4o-mini, not gpt-4o.
        families = [
            (len(family), facts)
            for key, facts in self._entries.items()
            for key_provider, _, family in [key.partition(":")]
            if key_provider == provider and _is_variant(name, family)
        ]
        if families:
            return max(families, key=lambda found: found[0])[1]
        return self._entries.get(f"{provider}:{WILDCARD}")

    def _warn_unknown(self, model: ModelRef) -> None:
        with self._lock:
            if str(model) in self._warned:
                return
            self._warned.add(str(model))
        log.warning(
            "no price or context window known for %s; counting it as free with an "
            "%d-token context window (add it to PARLEY_PRICES_FILE to fix)",
            model,
            UNKNOWN_MODEL.context_window,
        )


def _is_variant(name: str, family: str) -> bool:
    # "-" for dated/suffixed releases, "@" for Vertex-style version tags.
    return (
        family != WILDCARD
        and name.startswith(family)
        and name[len(family) : len(family) + 1] in {"-", "@"}
    )


def _normalise(key: str) -> str:
    ref = ModelRef.parse(key)
    return f"{ref.provider.lower()}:{ref.name.lower()}"


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"prices file {path}: cannot read it ({error.strerror})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"prices file {path}: not valid YAML/JSON ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"prices file {path}: expected a mapping of provider:model to prices")
    return data


def _entry_name(path: Path, key: object) -> str:
    try:
        if isinstance(key, str):
            return _normalise(key)
    except ValueError:
        pass
    raise ValueError(f"prices file {path}: entry {key!r}: the key must look like provider:model")


def _parse_entry(path: Path, key: object, raw: object, base: ModelFacts) -> ModelFacts:
    where = f"prices file {path}: entry {key!r}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping with input_per_million/output_per_million")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
    for required in ("input_per_million", "output_per_million"):
        if required not in raw:
            raise ValueError(f"{where}: {required} is required")
    return replace(
        base,
        input_per_million=_price(where, "input_per_million", raw["input_per_million"]),
        output_per_million=_price(where, "output_per_million", raw["output_per_million"]),
        context_window=_window(where, raw.get("context_window", base.context_window)),
    )


def _price(where: str, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: {field} must be a non-negative number, got {value!r}")
    return float(value)


def _window(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: context_window must be a positive integer, got {value!r}")
    return value
