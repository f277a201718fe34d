"""How long a user's message may be: one rule, whichever way the message arrives."""

from __future__ import annotations

from dataclasses import dataclass

from parley.catalog import Agent
from parley.errors import TooLarge


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """The server's limit (``PARLEY_MAX_MESSAGE_CHARS``), lowered by a rule set's ``max_length``."""

    server_chars: int

    def for_agent(self, agent: Agent) -> int:
        """The longest message ``agent`` accepts (the session frame tells clients)."""
        return min(self.server_chars, agent.rules.max_length)

    def check(self, text: str, agent: Agent) -> None:
        """Refuse a message longer than ``agent`` accepts, before anything is stored."""
        limit = self.for_agent(agent)
        if len(text) > limit:
            raise TooLarge(
                f"The message has {len(text)} characters; this agent accepts at most {limit}."
            )
