"""The agents a user can talk to (``GET /v1/agents``)."""

from __future__ import annotations

from parley.transport.bodies.base import Closed


class PersonalitySummary(Closed):
    id: str
    name: str
    tone: str
    traits: list[str]


class Domain(Closed):
    id: str
    name: str
    description: str


class AgentInfo(Closed):
    id: str
    name: str
    description: str
    personality: PersonalitySummary
    domain: Domain


class AgentList(Closed):
    agents: list[AgentInfo]
