"""Checksums that confirm a pattern match is the real thing (``check:`` in a rule).

A 16-digit order number is not a card number. Running the Luhn or IBAN
mod-97 check on a match costs microseconds and keeps redaction from eating
harmless numbers. The detectors (:mod:`parley.rules.detectors`) use the same
python-stdnum checks and know the formats too; ``check`` is for operators'
own regex patterns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from stdnum import iban as _iban
from stdnum import luhn as _luhn

CheckName = Literal["luhn", "iban"]


def luhn(text: str) -> bool:
    digits = "".join(c for c in text if c.isdigit() and c.isascii())
    return len(digits) >= 12 and _luhn.is_valid(digits)


def iban(text: str) -> bool:
    compact = "".join(c for c in text if c.isalnum()).upper()
    return compact.isascii() and _iban.is_valid(compact)


CHECKS: dict[str, Callable[[str], bool]] = {"luhn": luhn, "iban": iban}


def check_validator(name: str) -> Callable[[str, int, int], int | None]:
    """A match validator that keeps a match whole if it passes the check, else refuses it."""
    check = CHECKS[name]

    def validate(text: str, start: int, end: int) -> int | None:
        return end if check(text[start:end]) else None

    return validate
