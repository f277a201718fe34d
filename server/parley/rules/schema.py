"""The ``rules/*.yaml`` file format as pydantic models (unknown keys are errors).

Files whose name starts with ``_`` are fragments: they are not domains, but
domains ``include`` them to share defaults (``rules/_common.yaml``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from parley.llm.base import ModelRef
from parley.rules.classifier import ClassifierRule
from parley.rules.patterns import (
    BlockRule,
    EscalationRule,
    OutputRedactRule,
    RedactRule,
    ReplaceRule,
)
from parley.rules.templates import TemplateSource


def _model_name(value: str) -> str:
    ModelRef.parse(value)
    return value


ModelName = Annotated[str, AfterValidator(_model_name)]
ToolId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
DomainId = Annotated[str, Field(pattern=r"^_?[a-z][a-z0-9_]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSection(_Strict):
    max_length: int | None = Field(default=None, ge=1, le=1_000_000)
    block: list[BlockRule] = Field(default_factory=list)
    redact: list[RedactRule] = Field(default_factory=list)
    classify: list[ClassifierRule] = Field(
        default_factory=list, description="a configured model judges each message"
    )


class OutputSection(_Strict):
    replace: list[ReplaceRule] = Field(default_factory=list)
    redact: list[OutputRedactRule] = Field(default_factory=list)
    disclaimer: str | None = None


class LimitsSection(_Strict):
    """Unset fields fall back to an included fragment, then to the defaults."""

    max_reply_tokens: int | None = Field(default=None, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    models: list[ModelName] | None = None
    daily_token_budget: int | None = Field(default=None, ge=1)
    max_tool_rounds: int | None = Field(
        default=None, ge=1, le=20, description="model calls that may ask for tools, per reply"
    )


class RulesFile(_Strict):
    id: DomainId
    name: str = Field(min_length=1)
    description: str = ""
    include: list[str] = Field(default_factory=list, description="fragments, e.g. _common")
    disable: list[str] = Field(default_factory=list, description="ids of included rules to drop")
    instructions: TemplateSource = ""
    input: InputSection = Field(default_factory=InputSection)
    output: OutputSection = Field(default_factory=OutputSection)
    escalation: list[EscalationRule] = Field(default_factory=list)
    tools: list[ToolId] = Field(
        default_factory=list, description="ids of tools/*.yaml (and built-ins) it may call"
    )
    knowledge: list[ToolId] = Field(
        default_factory=list, description="knowledge/<collection>/ folders it may search"
    )
    limits: LimitsSection = Field(default_factory=LimitsSection)

    @property
    def is_fragment(self) -> bool:
        return self.id.startswith("_")
