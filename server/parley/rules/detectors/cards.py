"""Payment card numbers: 13 to 19 digits in any grouping, Luhn-checked.

The first digit is 2 to 6 (the major industry identifiers of the card
networks: Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard,
Discover/UnionPay), which keeps years, phone numbers and most order numbers
from ever being candidates. Digits may be separated by up to three of space,
``.``, ``-``, ``/`` or ``_`` (so also NBSP, thin, double and zero-width
spaces, which the view has already made one space or nothing).
"""

from __future__ import annotations

from stdnum import luhn

from parley.rules.detectors.base import SEPARATOR, Detector, alnum, group_ends

# Not inside a longer number, nor after "+" (an international phone number).
CANDIDATE = rf"(?<![0-9+])[2-6](?:{SEPARATOR}{{0,3}}[0-9]){{12,18}}(?![0-9])"


def validate(text: str, start: int, end: int) -> int | None:
    """The longest run of whole digit groups from ``start`` that is a card number."""
    for stop, count in reversed(list(group_ends(text, start, end))):
        if 13 <= count <= 19 and luhn.is_valid(alnum(text, start, stop)):
            return stop
    return None


DETECTOR = Detector("card_number", CANDIDATE, validate)
