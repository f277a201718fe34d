"""A rule's pattern, compiled: the regex it runs over the normalised view, and its validator.

A rule names what it looks for in one of three ways: a ``phrase``, a
``regex`` (both optionally with a ``check``), or a ``detector``. All three
end up as a bounded regex, checked by :func:`parley.rules.safety.analyse`,
plus an optional validator that confirms or narrows each match. That shared
shape is what lets every kind stream and run in one alternation. Classifier
rules, which cannot be a regex, are a list of their own that judges whole
messages (:mod:`parley.rules.classifier`; docs/rules.md, "Classifier rules").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from parley.rules.checks import check_validator
from parley.rules.detectors import Validator, build_detector
from parley.rules.leet import leet_source
from parley.rules.normalize import normalize
from parley.rules.safety import PatternError, Shape, analyse


@dataclass(frozen=True)
class Compiled:
    source: str  # over the normalised view
    ignore_case: bool
    shape: Shape
    validate: Validator | None = None  # None: every regex match counts as it is


@dataclass(frozen=True)
class Limits:
    streaming: bool  # output rules: no anchors, and the filter holds back up to max_width
    max_width: int


def phrase_source(phrase: str) -> str:
    """The regex for a phrase: its words (as the view spells them) in order, whole words.

    The view has already made every run of whitespace one space, so a single
    ``\\s`` between words allows any spacing in the original.
    """
    words = normalize(phrase).text.split()
    if not words:
        raise PatternError("the phrase is empty")
    body = r"\s".join(re.escape(word) for word in words)
    # Look-arounds rather than \b: with leetspeak a word may start with "$" or "@".
    start = r"(?<!\w)" if re.match(r"\w", words[0]) else ""
    end = r"(?!\w)" if re.match(r"\w", words[-1][-1]) else ""
    return f"{start}{body}{end}"


def compile_regex(
    source: str,
    *,
    ignore_case: bool,
    limits: Limits,
    leetspeak: bool = False,
    check: str | None = None,
) -> Compiled:
    """A phrase's or an author's regex; raises :class:`PatternError` if unsafe."""
    if leetspeak:
        source = leet_source(source, ignore_case=ignore_case)
    try:
        shape = _analyse(source, ignore_case, limits)
    except PatternError as error:
        if not leetspeak:
            raise
        raise PatternError(f"{error} (once widened for leetspeak; see leetspeak: false)") from None
    validate = check_validator(check) if check is not None else None
    return Compiled(source, ignore_case, shape, validate)


def compile_detector(name: str, *, regions: tuple[str, ...], limits: Limits) -> Compiled:
    detector = build_detector(name, regions=regions)
    try:
        shape = _analyse(detector.candidate, detector.ignore_case, limits)
    except PatternError as error:
        raise PatternError(f"detector {name} cannot be used here: {error}") from None
    shape = replace(shape, behind=max(shape.behind, detector.behind))
    return Compiled(detector.candidate, detector.ignore_case, shape, detector.validate)


def _analyse(source: str, ignore_case: bool, limits: Limits) -> Shape:
    return analyse(
        source, ignore_case=ignore_case, streaming=limits.streaming, max_width=limits.max_width
    )
