"""A list of pattern rules compiled into one alternation over the normalised view.

What counts as a match, everywhere (whole text, stream, history): scanning
left to right, the leftmost position where some rule's match is confirmed
by its validator, and at that position the earliest rule in the list. A
match a validator refuses does not hide the text under it: the later rules
are tried at the same position, then the scan moves on by one character.
So ``12 4111 1111 1111 1111`` still yields the card number after a leading
``12`` made the first candidate fail its checksum. Matches never overlap
and replacement text is never scanned again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from parley.rules.detectors import Validator
from parley.rules.events import RuleEvent
from parley.rules.normalize import View, normalize
from parley.rules.patterns import PatternSpec
from parley.rules.regex_tree import partial_source
from parley.rules.safety import Shape


@dataclass(frozen=True)
class Rule:
    """One compiled pattern and what happens when it matches."""

    id: str
    action: str  # the RuleEvent action: "redacted", "replaced", "blocked", "handoff"
    source: str  # over the normalised view
    ignore_case: bool
    shape: Shape
    validate: Validator | None = None
    replacement: str | None = None
    match_case: bool = False
    detail: str = ""

    @classmethod
    def from_spec(
        cls,
        spec: PatternSpec,
        action: str,
        *,
        replacement: str | None = None,
        match_case: bool = False,
        detail: str = "",
    ) -> Rule:
        compiled = spec.compiled
        return cls(
            id=spec.id,
            action=action,
            source=compiled.source,
            ignore_case=compiled.ignore_case,
            shape=compiled.shape,
            validate=compiled.validate,
            replacement=replacement,
            match_case=match_case,
            detail=detail,
        )

    def scoped_source(self) -> str:
        return f"(?{'i' if self.ignore_case else '-i'}:{self.source})"

    def partial_source(self) -> str:
        """Matches where this rule matches or could once more text arrives."""
        return partial_source(self.source, ignore_case=self.ignore_case)

    def confirm(self, text: str, start: int, end: int) -> int | None:
        """Where the match the regex found at ``start`` really ends, or None if it is not one."""
        return end if self.validate is None else self.validate(text, start, end)

    def substitute(self, matched: str) -> str:
        replacement = self.replacement if self.replacement is not None else matched
        return _match_case(matched, replacement) if self.match_case else replacement

    def event(self) -> RuleEvent:
        return RuleEvent(rule=self.id, action=self.action, detail=self.detail)


def _match_case(matched: str, replacement: str) -> str:
    letters = [c for c in matched if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return replacement.upper()
    if letters[:1] and letters[0].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


@dataclass(frozen=True)
class Hit:
    """A confirmed match: view characters ``[start, end)``."""

    rule: Rule
    start: int
    end: int


class PatternSet:
    """Rules scanned together. Empty sets are valid and match nothing."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._index = {f"parley_rule_{i}": i for i in range(len(self.rules))}
        combined = "|".join(
            f"(?P<{name}>{self.rules[i].scoped_source()})" for name, i in self._index.items()
        )
        self.regex: re.Pattern[str] | None = re.compile(combined) if self.rules else None
        self._singles = tuple(re.compile(rule.scoped_source()) for rule in self.rules)
        shapes = [rule.shape for rule in self.rules]
        self.reach = max((s.reach for s in shapes), default=0)
        self.behind = max((s.behind for s in shapes), default=0)
        # Succeeds where a match, or a partial match running into the end of the text,
        # begins: the streaming filter releases the text before that position.
        partials = "|".join(rule.partial_source() for rule in self.rules)
        self.viable: re.Pattern[str] | None = re.compile(partials) if self.rules else None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def next_hit(self, text: str, position: int, limit: int) -> Hit | None:
        """The first confirmed match starting in ``[position, limit)`` of the view ``text``."""
        if self.regex is None:
            return None
        while position < limit:
            match = self.regex.search(text, position)
            if match is None or match.start() >= limit:
                return None
            hit = self._confirm_at(text, match)
            if hit is not None:
                return hit
            position = match.start() + 1
        return None

    def _confirm_at(self, text: str, match: re.Match[str]) -> Hit | None:
        """The earliest rule whose match at ``match.start()`` is confirmed."""
        assert match.lastgroup is not None, "every alternative is a named group"
        start, first = match.start(), self._index[match.lastgroup]
        for index in range(first, len(self.rules)):
            found = match if index == first else self._singles[index].match(text, start)
            end = None if found is None else self.rules[index].confirm(text, start, found.end())
            if end is not None:
                return Hit(self.rules[index], start, end)
        return None

    def hits(self, text: str) -> Iterator[Hit]:
        """Every match in the view ``text``, left to right."""
        position = 0
        while (hit := self.next_hit(text, position, len(text))) is not None:
            yield hit
            position = hit.end

    def rewrite(self, text: str, view: View) -> tuple[str, list[RuleEvent]]:
        """Rewrite ``text`` (whose view is ``view``) at every match, all at once."""
        out: list[str] = []
        events: list[RuleEvent] = []
        position = 0
        for hit in self.hits(view.text):
            start, end = view.source(hit.start, hit.end)
            start = max(start, position)  # one character may fold to several: "ﬁ" to "fi"
            out += (text[position:start], hit.rule.substitute(text[start:end]))
            events.append(hit.rule.event())
            position = end
        out.append(text[position:])
        return "".join(out), events

    def apply(self, text: str) -> tuple[str, list[RuleEvent]]:
        """The whole-text rewrite: the reference the streaming filter must equal."""
        if self.regex is None:
            return text, []
        return self.rewrite(text, normalize(text))

    def matching(self, view_text: str) -> list[Rule]:
        """Every rule that matches somewhere in the view (confirmed), in order."""
        return [
            rule
            for rule, regex in zip(self.rules, self._singles, strict=True)
            if _confirmed_anywhere(rule, regex, view_text)
        ]


def _confirmed_anywhere(rule: Rule, regex: re.Pattern[str], text: str) -> bool:
    position = 0
    while (match := regex.search(text, position)) is not None:
        if rule.confirm(text, match.start(), match.end()) is not None:
            return True
        position = match.start() + 1
    return False
