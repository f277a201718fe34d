"""What the rules engine reports back: events and the verdict on one message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleEvent:
    """One rule firing. ``detail`` never contains the matched text itself."""

    rule: str
    action: str  # redacted, blocked, replaced, disclaimer, handoff or refused
    detail: str


@dataclass(frozen=True)
class InputVerdict:
    """The outcome of checking one user message.

    ``text`` is what may reach the model and storage (redactions applied).
    ``blocked_reply`` is set when the turn must end with that fixed reply and
    no model call: a block rule matched, or an escalation rule that carries
    its own reply (``handoff`` is then true as well).
    """

    text: str
    events: tuple[RuleEvent, ...]
    blocked_reply: str | None
    handoff: bool
    redacted: bool

    @property
    def blocked(self) -> bool:
        return self.blocked_reply is not None
