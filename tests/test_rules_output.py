"""Output rules on streamed replies: same result as the whole text, however it is chunked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.catalog import Catalog, load_catalog
from parley.rules import OutputFilter, RuleEvent, RuleSet
from parley.rules.ruleset import build_ruleset
from parley.rules.schema import RulesFile
from support.whole_reply import whole_reply

ROOT = Path(__file__).resolve().parents[1]
CATALOG: Catalog = load_catalog(ROOT)
DOMAINS = sorted(CATALOG.rule_sets)

# A text each regex-based output rule must catch. Phrase rules supply their own.
REGEX_SAMPLES = {
    "card_number": "4111 1111 1111 1111",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "us_ssn": "123-45-6789",
    "risk_free": "Risk-free",
    "cannot_lose": "you can't lose money",
    "wipe_root": "sudo rm -rf /",
}


def output_specs(domain: str) -> list[dict[str, Any]]:
    """The output rules of a shipped domain, read from the YAML (includes first)."""
    spec = yaml.safe_load((ROOT / "rules" / f"{domain}.yaml").read_text())
    files = [yaml.safe_load((ROOT / "rules" / f"{n}.yaml").read_text()) for n in spec["include"]]
    rules: list[dict[str, Any]] = []
    for data in [*files, spec]:
        output = data.get("output", {})
        rules += output.get("redact", []) + output.get("replace", [])
    return rules


def forbidden_samples(domain: str) -> list[str]:
    samples = []
    for rule in output_specs(domain):
        if "phrase" in rule:
            samples += [rule["phrase"], rule["phrase"].upper(), rule["phrase"].title()]
        else:
            samples.append(REGEX_SAMPLES[rule["id"]])
    return samples


def stream(rules: RuleSet, chunks: list[str]) -> tuple[str, list[RuleEvent]]:
    output_filter = rules.output_filter()
    out: list[str] = []
    events: list[RuleEvent] = []
    for chunk in chunks:
        text, found = output_filter.feed(chunk)
        out.append(text)
        events += found
        # Bounded in the normalised view; the original may add whitespace and invisibles.
        assert output_filter.held_view < rules.output.reach
    text, found = output_filter.finish()
    return "".join(out) + text, events + found


def test_every_shipped_output_rule_has_a_sample() -> None:
    for domain in DOMAINS:
        for rule in output_specs(domain):
            assert "phrase" in rule or rule["id"] in REGEX_SAMPLES, (domain, rule["id"])


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_sample_is_rewritten_whole(domain: str) -> None:
    rules = CATALOG.rule_sets[domain]
    for sample in forbidden_samples(domain):
        text = f"Note: {sample} here."
        rewritten, events = whole_reply(rules, text)
        assert sample not in rewritten, (domain, sample)
        assert [e.action for e in events if e.action != "disclaimer"] in (
            ["replaced"],
            ["redacted"],
        )


@pytest.mark.parametrize("domain", DOMAINS)
def test_forbidden_text_split_at_every_boundary_never_passes(domain: str) -> None:
    rules = CATALOG.rule_sets[domain]
    for sample in forbidden_samples(domain):
        text = f"So {sample}, ok"
        expected = whole_reply(rules, text)
        for cut in range(len(text) + 1):
            assert stream(rules, [text[:cut], text[cut:]]) == expected, (sample, cut)
        for first in range(1, len(text)):
            for second in range(first, len(text)):
                chunks = [text[:first], text[first:second], text[second:]]
                assert stream(rules, chunks)[0] == expected[0], (sample, first, second)


@pytest.mark.parametrize("domain", DOMAINS)
def test_character_by_character_stream_never_releases_a_forbidden_sample(domain: str) -> None:
    rules = CATALOG.rule_sets[domain]
    for sample in forbidden_samples(domain):
        output_filter = rules.output_filter()
        released = ""
        for char in f"Well, {sample} indeed":
            released += output_filter.feed(char)[0]
            assert sample.lower() not in released.lower()
        released += output_filter.finish()[0]
        assert sample.lower() not in released.lower()


PIECES = [
    "guaranteed returns",
    "Guaranteed  Returns",
    "guaranteed \t returns",  # the widest gap: matches as long as the pattern allows
    "guaranteed   returnsx",
    "GUARANTEED\nRETURN",
    "guaranteed profit",
    "guaran",
    "teed ",
    "returns",
    "risk-free",
    "risk free",
    "you can't lose money",
    "cannot lose",
    "the best in the world",
    "guaranteed results",
    "4111 1111 1111 1111",
    "4111-1111-1111-1112",
    "GB82 WEST 1234 5698 7654 32",
    "123-45-6789",
    "sudo rm -rf /",
    "rm -fr /tmp",
    " ",
    "\n",
    ". ",
]
texts = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(alphabet="aeginrstu GW0123456789-/\n'", max_size=8)),
    max_size=24,
).map("".join)
# Chunk sizes, used in turn until the text runs out: small sizes put a boundary
# at nearly every position, as a model streaming a token at a time does.
chunk_sizes = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=8)


def chunked(text: str, sizes: list[int]) -> list[str]:
    chunks, start, turn = [], 0, 0
    while start < len(text):
        size = sizes[turn % len(sizes)]
        chunks.append(text[start : start + size])
        start, turn = start + size, turn + 1
    return chunks


# Shipped domains share the 44-character IBAN window; this set has short windows
# only, so an off-by-one in the settling arithmetic cannot hide behind a longer one.
PHRASES_ONLY = build_ruleset(
    RulesFile.model_validate(
        {
            "id": "phrases",
            "name": "Phrases",
            "output": {
                "replace": [
                    {"id": "returns", "phrase": "guaranteed returns", "replacement": "R"},
                    {"id": "return", "phrase": "guaranteed return", "replacement": "r"},
                    {"id": "risk", "regex": r"\brisk[- ]free\b", "replacement": "F"},
                    {"id": "rm", "regex": r"rm -(?:rf|fr) /(?![\w.])", "replacement": "[rm]"},
                    {"id": "tee", "regex": r"(?<=a)tee(?=d)", "replacement": "T"},
                ]
            },
        }
    ),
    {},
)
RULE_SETS = {**CATALOG.rule_sets, "phrases": PHRASES_ONLY}


@pytest.mark.parametrize("name", sorted(RULE_SETS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, sizes=chunk_sizes)
def test_chunked_stream_equals_whole_text(name: str, text: str, sizes: list[int]) -> None:
    rules = RULE_SETS[name]
    chunks = chunked(text, sizes)
    assert "".join(chunks) == text
    assert stream(rules, chunks) == whole_reply(rules, text)


def test_replacement_follows_the_case_of_the_match() -> None:
    rules = CATALOG.rule_sets["financial_advisor"]
    text, _ = whole_reply(rules, "guaranteed returns. Guaranteed returns! GUARANTEED RETURNS?")
    assert text.startswith("potential returns. Potential returns! POTENTIAL RETURNS?")


def test_disclaimer_is_appended_once_at_the_end() -> None:
    rules = CATALOG.rule_sets["financial_advisor"]
    assert rules.disclaimer is not None
    text, events = stream(rules, ["Index funds ", "spread risk."])
    assert text == f"Index funds spread risk.\n\n{rules.disclaimer}"
    assert events == [RuleEvent(rule="disclaimer", action="disclaimer", detail="appended")]
    # Domains without a disclaimer add nothing.
    assert stream(CATALOG.rule_sets["content_creator"], ["Hi"]) == ("Hi", [])


def test_text_that_cannot_start_a_match_is_released_immediately() -> None:
    output_filter = CATALOG.rule_sets["financial_advisor"].output_filter()
    assert output_filter.feed("Hello there, ") == ("Hello there, ", [])
    # "gu" could begin "guaranteed ...": held until it is decided.
    assert output_filter.feed("let me gu") == ("let me ", [])
    assert output_filter.held == 2
    assert output_filter.feed("ess.") == ("guess.", [])
    assert output_filter.held == 0


def test_hold_back_is_bounded_by_the_longest_pattern() -> None:
    rules = CATALOG.rule_sets["financial_advisor"]
    output_filter = rules.output_filter()
    # A long run that keeps looking like the start of a card number.
    released = ""
    for _ in range(100):
        released += output_filter.feed("4")[0]
        assert output_filter.held <= rules.output.reach
    assert len(released) >= 100 - rules.output.reach


def test_filter_is_single_use() -> None:
    output_filter = CATALOG.rule_sets["technical_support"].output_filter()
    output_filter.feed("a")
    output_filter.finish()
    with pytest.raises(RuntimeError):
        output_filter.feed("b")
    with pytest.raises(RuntimeError):
        output_filter.finish()


def test_rule_set_without_output_rules_passes_chunks_straight_through() -> None:
    rules = build_ruleset(RulesFile.model_validate({"id": "plain", "name": "Plain"}), {})
    output_filter = rules.output_filter()
    assert isinstance(output_filter, OutputFilter)
    assert output_filter.feed("guaranteed re") == ("guaranteed re", [])
    assert output_filter.finish() == ("", [])


def test_lookaround_and_word_boundaries_hold_across_chunks() -> None:
    data = {
        "id": "demo",
        "name": "Demo",
        "output": {
            "replace": [
                {"id": "cat", "regex": r"(?<![a-z])cat(?!alog)", "replacement": "dog"},
                {"id": "ab", "phrase": "a b", "replacement": "X", "match_case": False},
            ]
        },
    }
    rules = build_ruleset(RulesFile.model_validate(data), {})
    text = "cat catalog bobcat cat. a b ab a  b"
    expected = whole_reply(rules, text)
    assert expected[0] == "dog catalog bobcat dog. X ab X"
    for size in range(1, 8):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert stream(rules, chunks) == expected
