"""A domain's compiled rules: what a message may contain, what a reply may say.

:func:`build_ruleset` merges a domain file with the fragments it includes
(fragment rules first, so shared redactions run before domain ones) and
compiles every pattern list once; the :class:`RuleSet` is then immutable and
shared by every conversation using the domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from parley.llm.base import ModelRef
from parley.rules.classifier import ClassifierRule
from parley.rules.events import InputVerdict, RuleEvent
from parley.rules.history import redact_turns
from parley.rules.matcher import PatternSet, Rule
from parley.rules.normalize import normalize
from parley.rules.patterns import BlockRule, EscalationRule, PatternSpec, RedactRule, ReplaceRule
from parley.rules.schema import LimitsSection, RulesFile
from parley.rules.stream import OutputFilter
from parley.rules.templates import PromptContext, PromptTemplate

DEFAULT_MAX_LENGTH = 8_000
DEFAULT_MAX_REPLY_TOKENS = 1_024
DEFAULT_MAX_TOOL_ROUNDS = 5
_T = TypeVar("_T")


@dataclass(frozen=True)
class Limits:
    max_reply_tokens: int = DEFAULT_MAX_REPLY_TOKENS
    temperature: float | None = None
    models: tuple[ModelRef, ...] = ()  # preferred first; empty means the server default
    daily_token_budget: int | None = None  # per user per domain; None is unlimited
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS


@dataclass(frozen=True, eq=False)
class RuleSet:
    id: str
    name: str
    description: str
    instructions: PromptTemplate
    max_length: int
    redact: PatternSet
    block: PatternSet
    escalation: PatternSet
    output: PatternSet
    disclaimer: str | None
    limits: Limits
    tools: tuple[str, ...] = ()  # tool ids the domain allows; agents may narrow them
    knowledge: tuple[str, ...] = ()  # collections it may search; agents may narrow them
    # Judged by a model while the reply's request is under way (replies/screening.py).
    classifiers: tuple[ClassifierRule, ...] = ()

    def check_input(self, text: str) -> InputVerdict:
        """Redact, then decide whether the turn may reach the model at all.

        Its length was checked before (``parley.message_limits``)."""
        view = normalize(text)
        redacted, events = self.redact.rewrite(text, view)
        # Block and escalation look at the original words, not the redaction labels.
        escalations = self.escalation.matching(view.text)
        blocks = self.block.matching(view.text)
        events += [rule.event() for rule in (*escalations, *blocks)]
        replies = [r.replacement for r in (*escalations, *blocks) if r.replacement]
        return InputVerdict(
            text=redacted,
            events=tuple(events),
            blocked_reply=replies[0] if replies else None,
            handoff=bool(escalations),
            redacted=redacted != text,
        )

    def redact_history(self, texts: Sequence[str]) -> tuple[list[str], list[RuleEvent]]:
        """Redact the user turns going upstream (oldest first) as one text.

        Catches what only the turns together reveal, such as a card number
        split across two messages; each text comes back with the redactions
        that touch it. See :mod:`parley.rules.history`.
        """
        return redact_turns(self.redact, texts)

    def output_filter(self) -> OutputFilter:
        return OutputFilter(self.output, self.disclaimer)

    def render_instructions(self, context: PromptContext) -> str:
        return self.instructions.render(context)


def build_ruleset(spec: RulesFile, fragments: Mapping[str, RulesFile]) -> RuleSet:
    """Merge ``spec`` with its includes; raise ValueError listing every problem."""
    problems: list[str] = []
    parts: list[RulesFile] = []
    for name in spec.include:
        fragment = fragments.get(name)
        if fragment is None:
            problems.append(f"include: unknown fragment {name!r} (known: {_names(fragments)})")
        else:
            parts.append(fragment)
    parts.append(spec)
    drop = set(spec.disable)  # by id, in every section
    known = {rule.id for part in parts for rule in _all_patterns(part)}
    known |= {rule.id for part in parts for rule in part.input.classify}
    problems += [f"disable: no included rule {rule_id!r}" for rule_id in sorted(drop - known)]

    def merged(pick: Callable[[RulesFile], Sequence[PatternSpec]], where: str) -> PatternSet:
        chosen = [rule for part in parts for rule in pick(part) if rule.id not in drop]
        problems.extend(_duplicates(chosen, where))
        return PatternSet([_rule(spec) for spec in chosen])

    redact = merged(lambda f: f.input.redact, "input.redact")
    block = merged(lambda f: f.input.block, "input.block")
    escalation = merged(lambda f: f.escalation, "escalation")
    # Redactions first: when both could match at one spot, privacy wins.
    output = merged(lambda f: [*f.output.redact, *f.output.replace], "output")
    classifiers = [rule for part in parts for rule in part.input.classify if rule.id not in drop]
    problems.extend(_duplicates(classifiers, "input.classify"))
    if problems:
        raise ValueError("\n".join(problems))
    # The domain's own instructions lead; shared fragment text follows.
    ordered = [spec, *parts[:-1]]
    texts = [part.instructions.strip() for part in ordered if part.instructions.strip()]
    return RuleSet(
        id=spec.id,
        name=spec.name,
        description=spec.description,
        instructions=PromptTemplate("\n\n".join(texts)),
        max_length=_last_set(p.input.max_length for p in parts) or DEFAULT_MAX_LENGTH,
        redact=redact,
        block=block,
        escalation=escalation,
        output=output,
        disclaimer=_last_set(p.output.disclaimer for p in parts),
        limits=_limits([p.limits for p in parts]),
        tools=tuple(dict.fromkeys(tool for part in parts for tool in part.tools)),
        knowledge=tuple(dict.fromkeys(name for part in parts for name in part.knowledge)),
        classifiers=tuple(classifiers),
    )


def _rule(spec: PatternSpec) -> Rule:
    if isinstance(spec, BlockRule):
        return Rule.from_spec(
            spec, "blocked", replacement=spec.reply, detail="ended the turn with its reply"
        )
    if isinstance(spec, EscalationRule):
        return Rule.from_spec(spec, "handoff", replacement=spec.reply, detail=spec.reason)
    if isinstance(spec, ReplaceRule):
        return Rule.from_spec(
            spec,
            "replaced",
            replacement=spec.replacement,
            match_case=spec.match_case,
            detail=f"replaced with {spec.replacement!r}",
        )
    if isinstance(spec, RedactRule):
        return Rule.from_spec(
            spec, "redacted", replacement=spec.replacement, detail=spec.replacement
        )
    raise TypeError(f"unexpected rule type {type(spec).__name__}")


def _all_patterns(spec: RulesFile) -> list[PatternSpec]:
    return [
        *spec.input.redact,
        *spec.input.block,
        *spec.escalation,
        *spec.output.redact,
        *spec.output.replace,
    ]


def _duplicates(rules: Sequence[PatternSpec | ClassifierRule], where: str) -> list[str]:
    seen: set[str] = set()
    found: list[str] = []
    for rule in rules:
        if rule.id in seen:
            found.append(f"{where}: rule id {rule.id!r} is used twice (after includes)")
        seen.add(rule.id)
    return found


def _last_set(values: Iterable[_T | None]) -> _T | None:
    """The domain's value if set, else the last include that set it."""
    chosen: _T | None = None
    for value in values:
        if value is not None:
            chosen = value
    return chosen


def _limits(sections: Sequence[LimitsSection]) -> Limits:
    chosen = LimitsSection()
    for section in sections:  # later sections override only what they set explicitly
        explicit = {name: getattr(section, name) for name in section.model_fields_set}
        chosen = chosen.model_copy(update=explicit)
    return Limits(
        max_reply_tokens=chosen.max_reply_tokens or DEFAULT_MAX_REPLY_TOKENS,
        temperature=chosen.temperature,
        models=tuple(ModelRef.parse(name) for name in chosen.models or ()),
        daily_token_budget=chosen.daily_token_budget,
        max_tool_rounds=chosen.max_tool_rounds or DEFAULT_MAX_TOOL_ROUNDS,
    )


def _names(mapping: Mapping[str, object]) -> str:
    return ", ".join(sorted(mapping)) or "none"
