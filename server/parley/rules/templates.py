"""Prompt fragments: Jinja2 templates rendered in a locked-down sandbox.

Catalog authors write personality prompts and domain instructions as Jinja2.
They only ever see four variables (``user_name``, ``date``, ``agent``,
``domain``); the sandbox refuses attribute access to internals such as
``''.__class__`` and caps the operators that could allocate huge strings, so
a catalog file cannot read server state or exhaust memory at render time.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator

MAX_RENDERED_CHARS = 20_000
_MAX_REPEAT = 10_000


class _PromptEnvironment(SandboxedEnvironment):
    """The stock sandbox plus a cap on ``*`` and ``**``, which it leaves unchecked."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        numbers = [v for v in (left, right) if isinstance(v, int) and not isinstance(v, bool)]
        if any(abs(n) > _MAX_REPEAT for n in numbers):
            raise SecurityError(f"operands of {operator_name!r} are limited to {_MAX_REPEAT}")
        if operator_name == "**":
            return operator.pow(left, right)
        return operator.mul(left, right)


def _environment() -> SandboxedEnvironment:
    # Prompts are plain text sent to a model, not HTML: autoescape stays off.
    return _PromptEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
    )


_ENV = _environment()  # stateless and thread-safe once built; sharing it is free


class PromptError(ValueError):
    """A template did not compile or render; the message says where and why."""


@dataclass(frozen=True)
class PromptContext:
    """The only values a prompt fragment can see."""

    user_name: str
    today: date
    agent_id: str
    agent_name: str
    domain_id: str
    domain_name: str
    domain_description: str

    def variables(self) -> dict[str, Any]:
        return {
            "user_name": self.user_name,
            "date": self.today.isoformat(),
            "agent": {"id": self.agent_id, "name": self.agent_name},
            "domain": {
                "id": self.domain_id,
                "name": self.domain_name,
                "description": self.domain_description,
            },
        }


SAMPLE_CONTEXT = PromptContext(
    user_name="Sample User",
    today=date(2024, 1, 31),
    agent_id="sample_agent",
    agent_name="Sample Agent",
    domain_id="sample_domain",
    domain_name="Sample Domain",
    domain_description="A sample domain.",
)


class PromptTemplate:
    """One compiled fragment. Compiling checks syntax; :meth:`render` checks the rest."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._template: Template = _ENV.from_string(source)
        except TemplateSyntaxError as error:
            raise PromptError(
                f"template syntax error on line {error.lineno}: {error.message}"
            ) from None
        except TemplateError as error:
            raise PromptError(f"template error: {error}") from None

    def render(self, context: PromptContext | Mapping[str, Any]) -> str:
        variables = context.variables() if isinstance(context, PromptContext) else dict(context)
        try:
            text = self._template.render(variables)
        except SecurityError as error:
            raise PromptError(f"template blocked by the sandbox: {error}") from None
        except TemplateError as error:
            raise PromptError(f"template error: {error}") from None
        if len(text) > MAX_RENDERED_CHARS:
            raise PromptError(f"rendered prompt exceeds {MAX_RENDERED_CHARS} characters")
        return text.strip()


def check_template(source: str) -> PromptTemplate:
    """Compile and trial-render with sample values, so bad fragments fail at load."""
    template = PromptTemplate(source)
    template.render(SAMPLE_CONTEXT)
    return template


def _compiles(source: str) -> str:
    check_template(source)
    return source


# A Jinja2 fragment in a catalog file, checked when the file is parsed.
TemplateSource = Annotated[str, AfterValidator(_compiles)]
