"""Checksums that confirm a pattern match is the real thing.

A 16-digit order number is not a card number. Running the Luhn or IBAN
mod-97 check on a match costs microseconds and keeps redaction from eating
harmless numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

CheckName = Literal["luhn", "iban"]
_DIGITS = frozenset("0123456789")


def luhn(text: str) -> bool:
    digits = [int(c) for c in text if c in _DIGITS]
    if len(digits) < 12:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban(text: str) -> bool:
    compact = "".join(text.split()).upper()
    if not 15 <= len(compact) <= 34 or not compact.isascii() or not compact.isalnum():
        return False
    rotated = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rotated)
    return int(number) % 97 == 1


CHECKS: dict[str, Callable[[str], bool]] = {"luhn": luhn, "iban": iban}
