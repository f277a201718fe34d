"""The ``personalities/*.yaml`` and ``agents.yaml`` formats (unknown keys are errors)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from parley.rules.schema import ModelName
from parley.rules.templates import TemplateSource

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
AgentId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Wildcard = Annotated[str, Field(pattern=r"^(\*|[a-z][a-z0-9_]{0,63})$")]
# A web origin as browsers send it: scheme, lower-case host, optional port, no path.
# Nothing else can pass, so the value is safe to put in a CSP or a CORS header.
SiteOrigin = Annotated[
    str,
    Field(
        pattern=r"^https?://(?:[a-z0-9](?:[a-z0-9.-]{0,252})|\[[0-9a-f:.]{2,45}\])(?::[0-9]{1,5})?$"
    ),
]
DEFAULT_GUEST_DAILY_TOKENS = 20_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonalityFile(_Strict):
    id: Slug
    name: str = Field(min_length=1)
    description: str = ""
    traits: list[str] = Field(min_length=1)
    tone: str = Field(min_length=1)
    approach: str = Field(min_length=1)
    prompt: TemplateSource = Field(min_length=1, description="a Jinja2 fragment")


class GuestsEntry(_Strict):
    """Anonymous visitors may chat with the agent through the embeddable widget."""

    sites: list[SiteOrigin] = Field(
        default_factory=list,
        description="origins that may embed the widget, besides this server's own pages",
    )
    daily_token_budget: int = Field(
        default=DEFAULT_GUEST_DAILY_TOKENS, ge=1, description="per guest per day"
    )


class AgentEntry(_Strict):
    id: AgentId
    name: str = Field(min_length=1)
    description: str | None = Field(default=None, description="defaults to the domain's")
    personality: Slug
    rules: Slug
    models: list[ModelName] | None = Field(default=None, description="overrides the domain's")
    max_reply_tokens: int | None = Field(default=None, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[Slug] | None = Field(
        default=None, description="narrows the rule set's tools; cannot add to them"
    )
    knowledge: list[Slug] | None = Field(
        default=None, description="narrows the rule set's collections; cannot add to them"
    )
    guests: GuestsEntry | None = Field(
        default=None, description="anonymous visitors (the widget); off when absent"
    )


class AllowedPair(_Strict):
    personality: Wildcard
    rules: Wildcard


class ComposeSection(_Strict):
    allow: list[AllowedPair] = Field(default_factory=list)


class AgentsFile(_Strict):
    agents: list[AgentEntry] = Field(min_length=1)
    compose: ComposeSection = Field(default_factory=ComposeSection)
