"""Pattern entries as written in ``rules/*.yaml``, validated at load.

Each entry names either a ``phrase`` (words matched case-insensitively, any
short run of whitespace between them, whole words at the edges) or a
``regex``. Validation runs the static safety analysis, so a file with a
dangerous or unbounded pattern never loads. Output patterns have a tighter
width limit because the streaming filter holds back that many characters.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from parley.rules.checks import CheckName
from parley.rules.safety import PatternError, Shape, analyse

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_INPUT_WIDTH = 1_000
MAX_OUTPUT_WIDTH = 200
_PHRASE_GAP = r"\s{1,3}"


def phrase_source(phrase: str) -> str:
    """The regex for a phrase: words in order, whitespace-tolerant, word-bounded."""
    words = phrase.split()
    if not words:
        raise PatternError("the phrase is empty")
    body = _PHRASE_GAP.join(re.escape(word) for word in words)
    start = r"\b" if re.match(r"\w", words[0]) else ""
    end = r"\b" if re.match(r"\w", words[-1][-1]) else ""
    return f"{start}{body}{end}"


class PatternSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    streaming: ClassVar[bool] = False
    max_width: ClassVar[int] = MAX_INPUT_WIDTH

    id: RuleId
    ignore_case: bool = True
    check: CheckName | None = Field(
        default=None, description="a checksum a match must also pass (luhn, iban)"
    )
    phrase: str | None = None
    regex: str | None = None

    _shape: Shape | None = PrivateAttr(default=None)

    @field_validator("phrase", "regex")
    @classmethod
    def _safe(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return value
        source = phrase_source(value) if info.field_name == "phrase" else value
        try:
            analyse(
                source,
                ignore_case=bool(info.data.get("ignore_case", True)),
                streaming=cls.streaming,
                max_width=cls.max_width,
            )
        except PatternError as error:
            raise PydanticCustomError("unsafe_pattern", str(error)) from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> PatternSpec:
        if (self.phrase is None) == (self.regex is None):
            raise ValueError("give exactly one of phrase or regex")
        self._shape = analyse(
            self.source,
            ignore_case=self.ignore_case,
            streaming=self.streaming,
            max_width=self.max_width,
        )
        return self

    @property
    def source(self) -> str:
        return phrase_source(self.phrase) if self.phrase is not None else str(self.regex)

    @property
    def shape(self) -> Shape:
        assert self._shape is not None, "validated models always have a shape"
        return self._shape


class BlockRule(PatternSpec):
    reply: str = Field(min_length=1)


class RedactRule(PatternSpec):
    replacement: str = Field(min_length=1)


class EscalationRule(PatternSpec):
    reason: str = Field(min_length=1)
    reply: str | None = Field(
        default=None, description="if set, the turn ends with this reply and no model call"
    )


class OutputRedactRule(RedactRule):
    streaming: ClassVar[bool] = True
    max_width: ClassVar[int] = MAX_OUTPUT_WIDTH


class ReplaceRule(PatternSpec):
    streaming: ClassVar[bool] = True
    max_width: ClassVar[int] = MAX_OUTPUT_WIDTH

    replacement: str
    match_case: bool = Field(
        default=True, description="capitalise the replacement like the matched text"
    )
