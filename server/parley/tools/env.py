"""``${env:NAME}`` references in tool files, and the secrets they resolve to.

Operators keep credentials and deployment-specific hosts out of the catalog
by naming environment variables instead. References are resolved once, when
the tool files load; a missing variable is a load problem, never a silent
empty string. Resolved header and environment values are wrapped in
:class:`Secret` so no repr, log line or error message can show them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# ``${env:NAME}`` and, in an MCP ``command``, ``${python}``. Anything else in
# ``${...}`` is a mistake worth reporting rather than passing on literally.
REFERENCE = re.compile(r"\$\{([^{}]*)\}")
ENV_NAME = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
PYTHON = "python"
MIN_SCRUBBED = 4  # shorter values would blank out ordinary text; they are no secret anyway


class UnresolvedReference(ValueError):
    """A reference that cannot be resolved; the message names the variable, never a value."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A resolved value that must not be shown. ``reveal()`` is the only way in."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Environment:
    """The variables references resolve against: ``os.environ`` in production, a dict in tests.

    ``python`` is the interpreter that runs Parley, so ``${python} -m ...``
    starts an MCP server with the same installed packages.
    """

    variables: Mapping[str, str]
    python: str = sys.executable

    def resolve(self, text: str, *, allow_python: bool = False) -> str:
        """``text`` with every reference replaced; :class:`UnresolvedReference` if one fails."""
        return REFERENCE.sub(lambda match: self._value(match.group(1), allow_python), text)

    def secrets_in(self, text: str) -> tuple[Secret, ...]:
        """``text`` resolved, and each variable value in it: what must never be shown.

        A service may echo back only part of a header (the token without
        ``Bearer``), so messages are scrubbed of the parts as well as the whole.
        """
        names = (ENV_NAME.match(match.group(1)) for match in REFERENCE.finditer(text))
        parts = [self.variables.get(name.group(1), "") for name in names if name is not None]
        return tuple(Secret(value) for value in (self.resolve(text), *parts) if value)

    def _value(self, reference: str, allow_python: bool) -> str:
        if reference == PYTHON and allow_python:
            return self.python
        name = ENV_NAME.match(reference)
        if name is None:
            allowed = "${env:NAME} or ${python}" if allow_python else "${env:NAME}"
            raise UnresolvedReference(f"unknown reference ${{{reference}}} (use {allowed})")
        value = self.variables.get(name.group(1), "")
        if not value:
            raise UnresolvedReference(f"environment variable {name.group(1)} is not set")
        return value


def scrub(text: str, secrets: Iterable[Secret]) -> str:
    """``text`` with every secret value replaced by ``***`` (longest first)."""
    for value in sorted((s.reveal() for s in secrets), key=len, reverse=True):
        if len(value) >= MIN_SCRUBBED:
            text = text.replace(value, "***")
    return text
