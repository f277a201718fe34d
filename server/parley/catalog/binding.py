"""Resolving ``agents.yaml`` against the loaded personalities and rule sets."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TypeVar

from parley.catalog.agent import Agent, GuestAccess, Personality
from parley.catalog.catalog import composed_id
from parley.catalog.files import Document, describe
from parley.catalog.schema import AgentEntry, AgentsFile
from parley.llm.base import ModelRef
from parley.rules.ruleset import RuleSet

T = TypeVar("T")
Loc = tuple[str | int, ...]


class AgentBinder:
    """Builds agents, appending a ``file: line: field: reason`` line per bad reference.

    ``broken`` holds ids whose own file failed to load: references to them are
    not reported again, since that file's problem already says what to fix.
    """

    def __init__(
        self,
        document: Document,
        personalities: Mapping[str, Personality],
        rule_sets: Mapping[str, RuleSet],
        *,
        broken: Collection[str],
        version: str,
        problems: list[str],
    ) -> None:
        self._document = document
        self._personalities = personalities
        self._rule_sets = rule_sets
        self._broken = broken
        self._version = version
        self._problems = problems

    def named(self, spec: AgentsFile) -> dict[str, Agent]:
        agents: dict[str, Agent] = {}
        for index, entry in enumerate(spec.agents):
            where: Loc = ("agents", index)
            if entry.id in agents:
                self._problem((*where, "id"), f"duplicate agent {entry.id!r}")
                continue
            personality = self._lookup(
                self._personalities, entry.personality, "personality", (*where, "personality")
            )
            rules = self._lookup(self._rule_sets, entry.rules, "rule set", (*where, "rules"))
            if personality is not None and rules is not None:
                agents[entry.id] = self._agent(entry, personality, rules, where)
        return agents

    def composed(self, spec: AgentsFile) -> dict[tuple[str, str], Agent]:
        """Every allowed pair, with ``*`` expanded, built ahead so compose() is a lookup."""
        composed: dict[tuple[str, str], Agent] = {}
        for index, pair in enumerate(spec.compose.allow):
            where: Loc = ("compose", "allow", index)
            p_ids = self._expand(
                self._personalities, pair.personality, "personality", (*where, "personality")
            )
            r_ids = self._expand(self._rule_sets, pair.rules, "rule set", (*where, "rules"))
            for p_id in p_ids:
                for r_id in r_ids:
                    composed[(p_id, r_id)] = self._pair(p_id, r_id)
        return composed

    def _agent(
        self, entry: AgentEntry, personality: Personality, rules: RuleSet, where: Loc
    ) -> Agent:
        """A named agent: its own overrides first, then the rule set's limits."""
        limits = rules.limits
        models = limits.models if entry.models is None else tuple(map(ModelRef.parse, entry.models))
        return Agent(
            id=entry.id,
            name=entry.name,
            description=rules.description if entry.description is None else entry.description,
            personality=personality,
            rules=rules,
            catalog_version=self._version,
            models=models,
            max_reply_tokens=entry.max_reply_tokens or limits.max_reply_tokens,
            temperature=limits.temperature if entry.temperature is None else entry.temperature,
            tools=self._narrowed(rules, rules.tools, entry.tools, "tool", (*where, "tools")),
            knowledge=self._narrowed(
                rules, rules.knowledge, entry.knowledge, "collection", (*where, "knowledge")
            ),
            guests=_guests(entry),
        )

    def _narrowed(
        self,
        rules: RuleSet,
        allowed: tuple[str, ...],
        chosen: Sequence[str] | None,
        kind: str,
        loc: Loc,
    ) -> tuple[str, ...]:
        """What ``rules`` allows (its tools, or its collections), narrowed by the
        agent's own list, ``chosen``, which cannot add to it."""
        if chosen is None:
            return allowed
        for position, name in enumerate(chosen):
            if name not in allowed:
                self._problem(
                    (*loc, position),
                    f"{kind} {name!r} is not allowed by rule set {rules.id!r}"
                    f" (allowed: {', '.join(allowed) or 'none'})",
                )
        return tuple(name for name in chosen if name in allowed)

    def _pair(self, personality_id: str, rules_id: str) -> Agent:
        personality = self._personalities[personality_id]
        rules = self._rule_sets[rules_id]
        return Agent(
            id=composed_id(personality_id, rules_id),
            name=f"{rules.name} ({personality.name})",
            description=rules.description,
            personality=personality,
            rules=rules,
            catalog_version=self._version,
            models=rules.limits.models,
            max_reply_tokens=rules.limits.max_reply_tokens,
            temperature=rules.limits.temperature,
            composed=True,
            tools=rules.tools,
            knowledge=rules.knowledge,
        )

    def _lookup(self, known: Mapping[str, T], key: str, kind: str, loc: Loc) -> T | None:
        if key in known:
            return known[key]
        if key not in self._broken:
            names = ", ".join(sorted(k for k in known if not k.startswith("_"))) or "none"
            self._problem(loc, f"unknown {kind} {key!r} (known: {names})")
        return None

    def _expand(self, known: Mapping[str, object], key: str, kind: str, loc: Loc) -> list[str]:
        if key == "*":
            return sorted(known)
        return [key] if self._lookup(known, key, kind, loc) is not None else []

    def _problem(self, loc: Loc, reason: str) -> None:
        self._problems.append(describe(self._document, loc, reason))


def _guests(entry: AgentEntry) -> GuestAccess | None:
    if entry.guests is None:
        return None
    return GuestAccess(
        sites=tuple(dict.fromkeys(entry.guests.sites)),
        daily_token_budget=entry.guests.daily_token_budget,
    )
