"""Pattern entries as written in ``rules/*.yaml``, validated at load.

Each entry names what it looks for in exactly one way:

* ``phrase``: words matched case-insensitively, any whitespace between them,
  whole words at the edges;
* ``regex``: a bounded Python regular expression (``check`` may add a
  checksum a match must pass);
* ``detector``: a format-aware finder for personal data (card numbers,
  IBANs, e-mail addresses, phone numbers, national ids).

All of them match the normalised view of the text (:mod:`parley.rules.normalize`).
Validation runs the static safety analysis, so a file with a dangerous or
unbounded pattern never loads. Output patterns have a tighter width limit
because the streaming filter holds back that many characters.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from parley.rules.checks import CheckName
from parley.rules.detectors import DetectorName
from parley.rules.safety import PatternError, Shape, analyse
from parley.rules.sources import Compiled, Limits, compile_detector, compile_regex, phrase_source

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_INPUT_WIDTH = 1_000
MAX_OUTPUT_WIDTH = 200
# How a pattern is written. Classifiers are not patterns: see rules/classifier.py.
SOURCE_KEYS = ("phrase", "regex", "detector")


def _region(value: str) -> str:
    code = value.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {value!r}; use ISO 3166 codes such as US, GB, DE")
    return code


RegionCode = Annotated[str, AfterValidator(_region)]


class PatternSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    streaming: ClassVar[bool] = False
    max_width: ClassVar[int] = MAX_INPUT_WIDTH

    id: RuleId
    ignore_case: bool = True
    check: CheckName | None = Field(
        default=None, description="a checksum a regex or phrase match must also pass"
    )
    phrase: str | None = None
    regex: str | None = None
    detector: DetectorName | None = None
    regions: list[RegionCode] | None = Field(
        default=None, description="phone_number: how to read numbers without a country code"
    )

    _compiled: Compiled | None = PrivateAttr(default=None)

    @field_validator("phrase", "regex")
    @classmethod
    def _safe(cls, value: str | None, info: Any) -> str | None:
        """Check the pattern as written, so the error points at the field itself."""
        if value is None:
            return value
        try:
            source = phrase_source(value) if info.field_name == "phrase" else value
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
    def _compile(self) -> PatternSpec:
        given = [key for key in SOURCE_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of phrase, regex or detector")
        if self.regions is not None and self.detector != "phone_number":
            raise ValueError("regions only apply to detector: phone_number")
        if self.check is not None and self.detector is not None:
            raise ValueError("a detector checks its own format; check applies to phrase and regex")
        try:
            self._compiled = self._build()
        except PatternError as error:
            raise ValueError(str(error)) from None
        return self

    def _build(self) -> Compiled:
        limits = Limits(streaming=self.streaming, max_width=self.max_width)
        if self.detector is not None:
            return compile_detector(self.detector, regions=tuple(self.regions or ()), limits=limits)
        source = phrase_source(self.phrase) if self.phrase is not None else str(self.regex)
        return compile_regex(
            source,
            ignore_case=self.ignore_case,
            limits=limits,
            leetspeak=self.folds_leetspeak(),
            check=self.check,
        )

    def folds_leetspeak(self) -> bool:
        return False

    @property
    def compiled(self) -> Compiled:
        assert self._compiled is not None, "validated models are always compiled"
        return self._compiled

    @property
    def source(self) -> str:
        return self.compiled.source

    @property
    def shape(self) -> Shape:
        return self.compiled.shape


class _WordRule(PatternSpec):
    """Rules that look for what a user writes: leetspeak is read as the letters it stands for."""

    leetspeak: bool = Field(default=True, description="also match 0 for o, 1 for i or l, ...")

    def folds_leetspeak(self) -> bool:
        return self.leetspeak and self.detector is None


class BlockRule(_WordRule):
    reply: str = Field(min_length=1)


class RedactRule(PatternSpec):
    replacement: str = Field(min_length=1)


class EscalationRule(_WordRule):
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
