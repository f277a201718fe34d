"""The loaded catalog: lookups by agent id or by allowed personality + rules pair."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from parley.catalog.agent import Agent, Personality
from parley.errors import UnknownAgent
from parley.rules.ruleset import RuleSet

# A composed agent (an allowed personality + rules pair) has the id
# "personality+rules", so a conversation with one resolves to it again.
# Named agents' ids cannot hold the separator (catalog/schema.py).
COMPOSED_SEPARATOR = "+"


def composed_id(personality: str, rules: str) -> str:
    return f"{personality}{COMPOSED_SEPARATOR}{rules}"


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

    def resolve(self, agent_id: str) -> Agent:
        """The agent a conversation names: a named agent, or a composed pair's."""
        personality, separator, rules = agent_id.partition(COMPOSED_SEPARATOR)
        if separator:
            return self.compose(personality, rules)
        return self.agent(agent_id)

    def compose(self, personality: str, rules: str) -> Agent:
        """An agent for an operator-allowed personality + rules pair."""
        try:
            return self._composed[(personality, rules)]
        except KeyError:
            raise UnknownAgent(
                f"The pair personality={personality!r}, rules={rules!r} is not available."
            ) from None

    def guest_agent(self, agent_id: str) -> Agent:
        """A named agent that takes guests; ``UnknownAgent`` for any other id (no hint
        whether the agent exists)."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.guests is None:
            raise UnknownAgent(f"No agent named {agent_id!r} takes guests.")
        return agent

    def guest_sites(self) -> frozenset[str]:
        """Every origin that may embed some agent's widget."""
        return frozenset(
            site for agent in self.agents.values() if agent.guests for site in agent.guests.sites
        )

    def public_agents(self) -> list[dict[str, Any]]:
        """What ``GET /v1/agents`` lists: named agents, in file order."""
        return [agent.public() for agent in self.agents.values()]
