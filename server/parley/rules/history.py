"""Redacting what goes upstream as a whole: the user turns of a conversation, oldest first.

Each message is checked on its own when it arrives, but an attacker can
split a card number across two messages ("4111 1111", then "1111 1111"),
and the next model call's history holds both halves. So before each call
the turns are scanned joined together, and a match that spans the boundary
between turns is redacted in every turn it touches.

The turns are joined with a newline. To every rule that is whitespace
between two tokens: detectors that allow whitespace inside a number (cards,
IBANs, phone numbers) see the halves as one number, which is the point,
while no two tokens are ever fused into one: ``12`` and ``34`` do not become
``1234``, and ``pass`` and ``word`` do not become ``password``. Joining with
nothing would fuse them; joining with punctuation (``.``) would itself be a
separator inside numbers and e-mail domains.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.rules.events import RuleEvent
from parley.rules.matcher import PatternSet
from parley.rules.normalize import normalize

TURN_SEPARATOR = "\n"

_Cut = tuple[int, int, str]  # start, end, replacement: in one turn's own offsets


def redact_turns(patterns: PatternSet, texts: Sequence[str]) -> tuple[list[str], list[RuleEvent]]:
    """Each text with the redactions that touch it, and one event per redaction."""
    joined = TURN_SEPARATOR.join(texts)
    bounds = _bounds(texts)
    view = normalize(joined)
    cuts: list[list[_Cut]] = [[] for _ in texts]
    events: list[RuleEvent] = []
    position = 0
    for hit in patterns.hits(view.text):
        start, end = view.source(hit.start, hit.end)
        start = max(start, position)  # one character may fold to several: "ﬁ" to "fi"
        replacement = hit.rule.substitute(joined[start:end])
        for turn, (low, high) in enumerate(bounds):
            if max(start, low) < min(end, high):
                cuts[turn].append((max(start, low) - low, min(end, high) - low, replacement))
        events.append(hit.rule.event())
        position = end
    return [_cut(text, turn_cuts) for text, turn_cuts in zip(texts, cuts, strict=True)], events


def _bounds(texts: Sequence[str]) -> list[tuple[int, int]]:
    """Where each text lies in the joined string."""
    bounds: list[tuple[int, int]] = []
    offset = 0
    for text in texts:
        bounds.append((offset, offset + len(text)))
        offset += len(text) + len(TURN_SEPARATOR)
    return bounds


def _cut(text: str, cuts: list[_Cut]) -> str:
    out: list[str] = []
    position = 0
    for start, end, replacement in cuts:
        out += (text[position:start], replacement)
        position = end
    out.append(text[position:])
    return "".join(out)
