"""Model facts: prices, context windows, dated variants and the operator's override file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from parley.llm.base import ModelRef
from parley.llm.models import UNKNOWN_MODEL, ModelFacts, PriceTable


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("openai:gpt-4o-mini-2024-07-18", "openai:gpt-4o-mini"),
        ("openai:gpt-4o-2024-08-06", "openai:gpt-4o"),
        ("openai:gpt-4.1-mini-2025-04-14", "openai:gpt-4.1-mini"),
        ("openai:gpt-5-mini-2025-08-07", "openai:gpt-5-mini"),
        ("openai:o3-mini-2025-01-31", "openai:o3-mini"),
        ("anthropic:claude-sonnet-4-5-20250929", "anthropic:claude-sonnet-4-5"),
        ("anthropic:claude-3-5-haiku-latest", "anthropic:claude-3-5-haiku"),
        ("anthropic:claude-opus-4-1@20250805", "anthropic:claude-opus-4-1"),
        ("openai:GPT-4o", "openai:gpt-4o"),
    ],
)
def test_dated_variants_match_their_family(model: str, family: str) -> None:
    table = PriceTable.defaults()
    assert table.facts(model) == table.facts(family)
    assert table.is_known(ModelRef.parse(model))


def test_cost_uses_per_million_prices() -> None:
    table = PriceTable.defaults()
    assert table.cost_usd("openai:gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost_usd(ModelRef("openai", "gpt-4o"), 1000, 500) == pytest.approx(0.0075)
    assert table.cost_usd("anthropic:claude-haiku-4-5", 2000, 1000) == pytest.approx(0.007)
    assert table.context_window("anthropic:claude-opus-4-1") == 200_000
    assert table.context_window("openai:gpt-4.1-nano") == 1_047_576


def test_family_prefix_needs_a_separator() -> None:
    table = PriceTable.defaults()
    # gpt-4 must not price gpt-4o-like names it merely prefixes.
    assert table.facts("openai:gpt-4") != table.facts("openai:gpt-4o")
    assert not table.is_known(ModelRef("openai", "gpt-50"))


def test_demo_models_are_free() -> None:
    table = PriceTable.defaults()
    assert table.cost_usd("demo:echo", 10_000, 10_000) == 0.0
    assert table.is_known(ModelRef("demo", "anything"))


def test_unknown_models_are_free_small_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.defaults()
    with caplog.at_level(logging.WARNING, logger="parley.llm.models"):
        assert table.facts("openai:llama3.1:8b") == UNKNOWN_MODEL
        assert table.cost_usd("openai:llama3.1:8b", 5000, 5000) == 0.0
        assert table.context_window("openai:llama3.1:8b") == 8192
    warnings = [r for r in caplog.records if "openai:llama3.1:8b" in r.getMessage()]
    assert len(warnings) == 1


def test_override_file_merges_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "openai:gpt-4o:\n"
        "  input_per_million: 1.0\n"
        "  output_per_million: 2\n"
        "openai:gpt-4o-2024-05-13:\n"
        "  input_per_million: 5\n"
        "  output_per_million: 15\n"
        "openai:llama3.1:\n"
        "  input_per_million: 0\n"
        "  output_per_million: 0\n"
        "  context_window: 131072\n"
    )
    table = PriceTable.load(path)

    assert table.facts("openai:gpt-4o") == ModelFacts(128_000, 1.0, 2.0)  # window kept
    assert table.facts("openai:gpt-4o-2024-08-06") == ModelFacts(128_000, 1.0, 2.0)
    assert table.facts("openai:gpt-4o-2024-05-13") == ModelFacts(128_000, 5.0, 15.0)
    assert table.context_window("openai:llama3.1:8b") == 8192  # ":8b" is not a dated variant
    assert table.context_window("openai:llama3.1") == 131_072
    assert table.facts("openai:gpt-4o-mini") == PriceTable.defaults().facts("openai:gpt-4o-mini")


def test_override_file_may_be_json_and_use_wildcards(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    entry = {"input_per_million": 0.5, "output_per_million": 0.5, "context_window": 32768}
    path.write_text(json.dumps({"openai:*": entry}))
    table = PriceTable.load(path)
    assert table.facts("openai:qwen2.5") == ModelFacts(32768, 0.5, 0.5)
    assert table.facts("openai:gpt-4o").input_per_million == 2.5  # specific entries win


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("gpt-4o: {input_per_million: 1, output_per_million: 1}", "entry 'gpt-4o'"),
        ("openai:x: {input_per_million: -1, output_per_million: 1}", "input_per_million"),
        ("openai:x: {input_per_million: 1}", "output_per_million is required"),
        ("openai:x: {input_per_million: 1, output_per_million: cheap}", "non-negative number"),
        (
            "openai:x: {input_per_million: 1, output_per_million: 1, context_window: 0}",
            "context_window",
        ),
        ("openai:x: {input_per_million: 1, output_per_million: 1, colour: red}", "colour"),
        ("openai:x: 3", "entry 'openai:x'"),
        ("- just\n- a list", "expected a mapping"),
        ("openai:x: [unclosed", "not valid YAML"),
    ],
)
def test_bad_override_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match="prices file") as caught:
        PriceTable.load(path)
    assert message in str(caught.value)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        PriceTable.load(tmp_path / "absent.yaml")
