"""A list of pattern rules compiled into one alternation.

One combined regex scans text once, left to right, with earlier rules
winning ties at the same position; that is exactly ``re.sub`` semantics,
which the streaming filter reproduces chunk by chunk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from parley.rules.checks import CHECKS
from parley.rules.events import RuleEvent
from parley.rules.patterns import PatternSpec
from parley.rules.regex_tree import partial_source
from parley.rules.safety import Shape


@dataclass(frozen=True)
class Rule:
    """One compiled pattern and what happens when it matches."""

    id: str
    action: str  # the RuleEvent action: "redacted", "replaced", "blocked", "handoff"
    source: str
    ignore_case: bool
    shape: Shape
    check: str | None = None
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
        return cls(
            id=spec.id,
            action=action,
            source=spec.source,
            ignore_case=spec.ignore_case,
            shape=spec.shape,
            check=spec.check,
            replacement=replacement,
            match_case=match_case,
            detail=detail,
        )

    def scoped_source(self) -> str:
        return f"(?{'i' if self.ignore_case else '-i'}:{self.source})"

    def partial_source(self) -> str:
        """Matches where this rule matches or could once more text arrives."""
        return partial_source(self.source, ignore_case=self.ignore_case)

    def accepts(self, matched: str) -> bool:
        return self.check is None or CHECKS[self.check](matched)

    def substitute(self, matched: str) -> str:
        replacement = self.replacement if self.replacement is not None else matched
        return _match_case(matched, replacement) if self.match_case else replacement

    def event(self) -> RuleEvent:
        return RuleEvent(rule=self.id, action=self.action, detail=self.detail)


def _match_case(matched: str, replacement: str) -> str:
    letters = [c for c in matched if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return replacement.upper()
    if matched[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


class PatternSet:
    """Rules scanned together. Empty sets are valid and match nothing."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._names = {f"parley_rule_{i}": rule for i, rule in enumerate(self.rules)}
        combined = "|".join(f"(?P<{name}>{r.scoped_source()})" for name, r in self._names.items())
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

    def rule_for(self, match: re.Match[str]) -> Rule:
        assert match.lastgroup is not None, "every alternative is a named group"
        return self._names[match.lastgroup]

    def resolve(self, match: re.Match[str]) -> tuple[str, RuleEvent | None]:
        """The text that replaces ``match``: itself when the rule's check refuses it."""
        rule = self.rule_for(match)
        matched = match.group(0)
        if not rule.accepts(matched):
            return matched, None
        return rule.substitute(matched), rule.event()

    def apply(self, text: str) -> tuple[str, list[RuleEvent]]:
        """Rewrite the whole text at once (``re.sub``); the reference for streaming."""
        if self.regex is None:
            return text, []
        events: list[RuleEvent] = []

        def replace(match: re.Match[str]) -> str:
            result, event = self.resolve(match)
            if event is not None:
                events.append(event)
            return result

        return self.regex.sub(replace, text), events

    def matching(self, text: str) -> list[Rule]:
        """Every rule that matches somewhere in ``text`` (and passes its check), in order."""
        found: list[Rule] = []
        for rule, regex in zip(self.rules, self._singles, strict=True):
            if any(rule.accepts(m.group(0)) for m in regex.finditer(text)):
                found.append(rule)
        return found
