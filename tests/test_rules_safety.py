"""Pattern safety: dangerous shapes are rejected at load; shipped patterns stay cheap."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from pydantic import ValidationError

from parley.catalog import load_catalog
from parley.rules.matcher import Rule
from parley.rules.patterns import BlockRule, ReplaceRule
from parley.rules.safety import MAX_PATHS, PatternError, analyse

ROOT = Path(__file__).resolve().parents[1]


def reason(source: str, *, streaming: bool = False) -> str:
    with pytest.raises(PatternError) as raised:
        analyse(source, ignore_case=True, streaming=streaming, max_width=200)
    return str(raised.value)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (r"(a+)+b", "unbounded quantifier"),
        (r"\w+@", "unbounded quantifier"),
        (r".*secret", "unbounded quantifier"),
        (r"x{2,}", "unbounded quantifier"),
        (r"(a{1,9}){1,9}b", "too much backtracking"),  # nested quantifiers
        (r"(?:\w{1,10}\s?){1,10}x", "too much backtracking"),
        (r"(?:a|ab){1,20}c", "too much backtracking"),  # overlapping alternation in a repeat
        (r"\d{1,40}\d{1,40}\d{1,40}x", "too much backtracking"),  # adjacent overlap
        (r"(a?){1,5}", "can match empty text"),
        (r"a?", "can match empty text"),
        (r"(a)\1", "backreferences"),
        (r"(a)?(?(1)b|c)", "backreferences and conditionals"),
        (r"(?i)abc", "inline global flags"),
        (r"(?P<digits>[0-9]{1,4})", "named groups"),
        (r"a{1,5000}", "above 1000"),
        (r"[a-z]{1,300}", "can match 300 characters; the limit is 200"),
        (r"(unclosed", "invalid regular expression"),
    ],
)
def test_dangerous_or_unbounded_patterns_are_rejected(source: str, expected: str) -> None:
    assert expected in reason(source)


@pytest.mark.parametrize("source", [r"^hello", r"bye$", r"\Aabc", r"abc\Z"])
def test_anchors_are_rejected_in_output_patterns_only(source: str) -> None:
    assert "anchors" in reason(source, streaming=True)
    analyse(source, ignore_case=True, streaming=False, max_width=200)


@pytest.mark.parametrize(
    "source",
    [
        r"[ab]{1,20}c",  # a class, not an alternation
        r"\b[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{1,7}\b",  # separators differ from digits
        r"[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}\.[a-z]{2,24}",  # '@' and '.' end the runs
        r"(?:[ ]?[A-Z0-9]{4}){2,7}",  # fixed-size groups repeated
        r"\b(?:yes|no|maybe)\b",
        r"(?<=\$)[0-9]{1,6}(?![0-9])",
        r"(?-i:ABC)(?i:def)",  # scoped flags are fine
    ],
)
def test_safe_shapes_are_accepted(source: str) -> None:
    shape = analyse(source, ignore_case=True, streaming=True, max_width=200)
    assert 1 <= shape.paths <= MAX_PATHS


def test_measured_widths_include_look_around() -> None:
    shape = analyse(r"(?<=ab)c{1,3}(?=de)", ignore_case=False, streaming=True, max_width=200)
    assert (shape.min_width, shape.max_width) == (1, 3)
    assert shape.reach == 5  # up to "ccc" plus the two characters the look-ahead reads
    assert shape.behind == 2


def test_rejection_surfaces_as_a_validation_error_on_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        ReplaceRule.model_validate(
            {"id": "x", "regex": r"guaranteed\s+returns", "replacement": "y"}
        )
    [error] = raised.value.errors()
    assert error["loc"] == ("regex",)
    assert "unbounded quantifier" in error["msg"]
    with pytest.raises(ValidationError, match="exactly one of phrase, regex or detector"):
        BlockRule.model_validate({"id": "x", "phrase": "a", "regex": "b", "reply": "no"})
    with pytest.raises(ValidationError, match="exactly one of phrase, regex or detector"):
        BlockRule.model_validate({"id": "x", "reply": "no"})


class Overran(Exception):
    pass


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds``; the re engine checks signals while matching.

    The bound is two orders of magnitude above the real cost, so it only ever
    fires on exponential backtracking, never on a slow machine.
    """

    def fire(signum: int, frame: FrameType | None) -> None:
        raise Overran(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_the_watchdog_does_stop_catastrophic_backtracking() -> None:
    with pytest.raises(Overran), watchdog(0.2):
        re.match(r"(a+)+b", "a" * 64)


def shipped_rules() -> list[tuple[str, Rule]]:
    catalog = load_catalog(ROOT)
    found = {}
    for rules in catalog.rule_sets.values():
        for group in (rules.redact, rules.block, rules.escalation, rules.output):
            for rule in group.rules:
                found[(rule.source, rule.ignore_case)] = (f"{rules.id}.{rule.id}", rule)
    return sorted(found.values(), key=lambda item: item[0])


# Near-misses of what the shipped patterns look for, repeated: the inputs that
# make a backtracking engine try hardest at every position.
PUMPS = [
    "4111 1111 1111 111",
    "3782 822463 1000",
    "GB82 WEST 1234 5698 7654 3",
    "a.b-c_d+e%",
    "ann.lee@mail.example.",
    "+44 20 7946 095",
    "(555) 010-999",
    "123-45-678",
    "ignore all previous the ",
    "talk to a real ",
    "kill ",
    "guaranteed ",
    "risk-",
    "you can't lose ",
    "sudo rm -rf ",
    "password is ",
    "sk_live_",
    "make 10 fake ",
    "how do i ",
]
FILLERS = [*"019aAZ.-@+()/_'", "\n", "\t", " "]


def adversarial_messages() -> list[str]:
    messages = [(pump * (4000 // len(pump) + 1))[:4000] for pump in PUMPS]
    messages += [filler * 4000 for filler in FILLERS]
    messages += [(a + b) * 2000 for a in "1a." for b in " -@."]
    return messages


def test_every_shipped_pattern_is_statically_cheap() -> None:
    for name, rule in shipped_rules():
        assert rule.shape.paths <= MAX_PATHS, name
        assert rule.shape.max_width <= 1000, name


def test_every_shipped_pattern_completes_on_adversarial_4000_char_messages() -> None:
    rules = shipped_rules()
    messages = adversarial_messages()
    completed = 0
    with watchdog(20.0):
        for _name, rule in rules:
            regex = re.compile(rule.scoped_source())
            for message in messages:
                assert len(message) == 4000
                sum(1 for _ in regex.finditer(message))
                completed += 1
    assert completed == len(rules) * len(messages)


# Where the streaming filter's text may stop: at the end, inside a pump, or one
# character in, so that match attempts run into the end at every phase of a pump.
CUTS = (4000, 3999, 2017, 1)


def test_partial_match_search_completes_on_adversarial_4000_char_messages() -> None:
    """The streaming filter's partial-match patterns: every attempt may run into the
    end of the text and succeed there, and a failing one may try more paths than
    the original. Both stay bounded: attempts from every position of the last 200
    characters (the unsettled tail the filter searches) before several cuts, and a
    scan of the whole message.
    """
    rules = shipped_rules()
    messages = adversarial_messages()
    completed = 0
    with watchdog(20.0):
        for _name, rule in rules:
            partial = re.compile(rule.partial_source())
            for message in messages:
                sum(1 for _ in partial.finditer(message))
                for cut in CUTS:
                    for start in range(max(0, cut - 200), cut):
                        partial.match(message, start, cut)
                    # At the cut itself every attempt runs straight into the end.
                    assert partial.match(message, cut, cut) is not None
                completed += 1
    assert completed == len(rules) * len(messages)


def test_whole_pipeline_completes_on_adversarial_messages() -> None:
    catalog = load_catalog(ROOT)
    messages = adversarial_messages()
    completed = 0
    with watchdog(20.0):
        for rules in catalog.rule_sets.values():
            for message in messages:
                rules.check_input(message)
                output_filter = rules.output_filter()
                for start in range(0, len(message), 7):
                    output_filter.feed(message[start : start + 7])
                output_filter.finish()
                completed += 1
    assert completed == len(catalog.rule_sets) * len(messages)
