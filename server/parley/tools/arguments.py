"""Tool argument schemas: checking a schema once at load, and the model's arguments per call.

The model's arguments are untrusted text. :class:`ArgumentChecker` turns
them into a dict only if they parse as a JSON object and satisfy the tool's
JSON Schema; otherwise it returns a reason short enough to hand back to the
model, which usually fixes its call on the next round.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

MAX_ARGUMENT_CHARS = 64_000  # far above any sane call; bounds the parse and validation work
MAX_REASONS = 3
MAX_REASON_CHARS = 300  # a reason can quote the offending value, which may be huge


def schema_problems(schema: Any) -> list[str]:
    """Why ``schema`` cannot describe tool arguments (empty if it can).

    The schema is checked against its metaschema (2020-12 unless it names
    another ``$schema``) and must describe an object, which both vendors require.
    """
    if not isinstance(schema, Mapping):
        return ["must be a JSON Schema (a mapping)"]
    cls = validator_for(schema, default=Draft202012Validator)
    problems = [
        f"{_where(error.json_path)}{error.message}"
        for error in cls(cls.META_SCHEMA).iter_errors(schema)
    ]
    if schema.get("type") != "object":
        problems.append('must have type "object" (tool arguments are a JSON object)')
    return problems


class ArgumentChecker:
    """Validates raw JSON arguments against one tool's (already checked) schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        cls = validator_for(schema, default=Draft202012Validator)
        self._validator: Validator = cls(schema)

    def check(self, arguments: str) -> dict[str, Any] | str:
        """The arguments as a dict, or why they are not acceptable."""
        if len(arguments) > MAX_ARGUMENT_CHARS:
            return f"arguments are too long ({len(arguments)} characters)"
        text = arguments.strip() or "{}"  # some models send "" for a call without arguments
        try:
            value = json.loads(text)
        except ValueError as error:
            return f"arguments are not valid JSON: {error}"
        if not isinstance(value, dict):
            return f"arguments must be a JSON object, not {type(value).__name__}"
        reasons = _reasons(self._validator.iter_errors(value))
        return "; ".join(reasons) if reasons else value


def _reasons(errors: Iterable[ValidationError]) -> list[str]:
    ordered = sorted(errors, key=lambda error: (list(map(str, error.path)), error.message))
    reasons = [_short(f"{_where(error.json_path)}{error.message}") for error in ordered]
    if len(reasons) > MAX_REASONS:
        reasons = [*reasons[:MAX_REASONS], f"and {len(reasons) - MAX_REASONS} more"]
    return reasons


def _where(json_path: str) -> str:
    return "" if json_path == "$" else f"{json_path.removeprefix('$.')}: "


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
