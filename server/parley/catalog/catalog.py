"""The loaded catalog: lookups by agent id or by allowed personality + rules pair."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from parley.catalog.agent import Agent, Personality
from parley.errors import UnknownAgent
from parley.rules.ruleset import RuleSet


class Catalog:
    """Every agent, personality and rule set from one consistent set of files."""

    def __init__(
        self,
        *,
        version: str,
        personalities: Mapping[str, Personality],
        rule_sets: Mapping[str, RuleSet],
        agents: Mapping[str, Agent],
        composed: Mapping[tuple[str, str], Agent],
    ) -> None:
        self.version = version
        self.personalities: Mapping[str, Personality] = MappingProxyType(dict(personalities))
        self.rule_sets: Mapping[str, RuleSet] = MappingProxyType(dict(rule_sets))
        self.agents: Mapping[str, Agent] = MappingProxyType(dict(agents))
        self._composed = dict(composed)

    def agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownAgent(f"No agent named {agent_id!r}.") from None

    def compose(self, personality: str, rules: str) -> Agent:
        """An agent for an operator-allowed personality + rules pair."""
        try:
            return self._composed[(personality, rules)]
        except KeyError:
            raise UnknownAgent(
                f"The pair personality={personality!r}, rules={rules!r} is not available."
            ) from None

    def allowed_pairs(self) -> list[dict[str, str]]:
        return [{"personality": p, "rules": r} for p, r in sorted(self._composed)]

    def public_agents(self) -> list[dict[str, Any]]:
        """What ``GET /v1/agents`` lists: named agents, in file order."""
        return [agent.public() for agent in self.agents.values()]
