"""Declarative business rules: input checks, streaming output filters, limits, budgets."""

from parley.rules.events import InputVerdict, RuleEvent
from parley.rules.ruleset import Limits, RuleSet
from parley.rules.safety import PatternError
from parley.rules.stream import OutputFilter

__all__ = ["InputVerdict", "Limits", "OutputFilter", "PatternError", "RuleEvent", "RuleSet"]
