"""Personalities and agents: immutable values built once per catalog load."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from parley.errors import Forbidden
from parley.llm.base import ModelRef
from parley.rules.ruleset import RuleSet
from parley.rules.templates import PromptContext, PromptTemplate

MAX_USER_NAME = 64


@dataclass(frozen=True)
class Personality:
    id: str
    name: str
    description: str
    traits: tuple[str, ...]
    tone: str
    approach: str
    prompt: PromptTemplate

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "tone": self.tone, "traits": list(self.traits)}


@dataclass(frozen=True)
class GuestAccess:
    """Who may chat with an agent without an account: visitors of ``sites`` (origins)
    through the widget, each with ``daily_token_budget`` tokens a day."""

    sites: tuple[str, ...]
    daily_token_budget: int


@dataclass(frozen=True, eq=False)
class Agent:
    """A personality bound to a rule set, with the effective model settings."""

    id: str
    name: str
    description: str
    personality: Personality
    rules: RuleSet
    catalog_version: str
    models: tuple[ModelRef, ...]  # preferred first; empty means the server default
    max_reply_tokens: int
    temperature: float | None
    composed: bool = False  # built from an allowed pair rather than named in agents.yaml
    tools: tuple[str, ...] = ()  # tool ids it may call: the rule set's, narrowed by agents.yaml
    knowledge: tuple[str, ...] = ()  # collections it searches: the rule set's, narrowed likewise
    guests: GuestAccess | None = None  # None: signed-in users only
    serving_guest: bool = False  # this copy answers a guest: the guests' budget applies

    @property
    def daily_token_budget(self) -> int | None:
        if self.serving_guest and self.guests is not None:
            return self.guests.daily_token_budget
        return self.rules.limits.daily_token_budget

    def for_guest(self) -> Agent:
        """This agent as it answers a guest; ``Forbidden`` unless it takes guests (now)."""
        if self.guests is None:
            raise Forbidden("This agent does not take guests.")
        return replace(self, serving_guest=True)

    def system_prompt(self, *, user_name: str, today: date) -> str:
        context = PromptContext(
            user_name=clean_user_name(user_name),
            today=today,
            agent_id=self.id,
            agent_name=self.name,
            domain_id=self.rules.id,
            domain_name=self.rules.name,
            domain_description=self.rules.description,
        )
        parts = (self.personality.prompt.render(context), self.rules.render_instructions(context))
        return "\n\n".join(part for part in parts if part)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "personality": self.personality.id,
            "rules": self.rules.id,
        }

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "personality": self.personality.public(),
            "domain": {
                "id": self.rules.id,
                "name": self.rules.name,
                "description": self.rules.description,
            },
        }


def clean_user_name(name: str) -> str:
    """The display name as it may appear in a system prompt.

    It comes from the user, so it is a prompt-injection vector: drop control
    and format characters (newlines could start fake instructions), collapse
    whitespace and cap the length.
    """
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    collapsed = " ".join(kept.split())[:MAX_USER_NAME].strip()
    return collapsed or "the user"
