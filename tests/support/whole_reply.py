"""The output rules applied to a whole reply at once: the oracle for streamed replies."""

from __future__ import annotations

from parley.rules import RuleEvent, RuleSet
from parley.rules.closing import append_text


def whole_reply(rules: RuleSet, text: str) -> tuple[str, list[RuleEvent]]:
    """What ``rules.output_filter()`` must give for ``text``, however it is chunked."""
    rewritten, events = rules.output.apply(text)
    if rules.disclaimer:
        suffix, event = append_text(rewritten, rules.disclaimer)
        rewritten += suffix
        events.append(event)
    return rewritten, events
