"""Payment card numbers: 13 to 19 digits in any grouping, Luhn-checked.

A card number starts where the card networks' ranges do: 22 to 27
(Mastercard 2-series, Mir), 3 (Amex, Diners, JCB), 4 (Visa), 5 (Mastercard,
Maestro), 6 (Discover, UnionPay, Maestro, RuPay), 81 or 82 (UnionPay, RuPay).
So no year from 1900 to 2199 can begin one: with separators allowed
anywhere, "2024-01-01 - 2024-12-31" is 16 digits and would pass Luhn one
time in ten. Digits may be separated by one or two of space, ``.``, ``-``,
``/`` or ``_`` (so also NBSP, thin, double and zero-width spaces, which the
view has already made one space or nothing); not by " - ", which is how a
range of two numbers is written.
"""

from __future__ import annotations

from stdnum import luhn

from parley.rules.detectors.base import GAP, Detector, alnum, group_ends

_NEXT = GAP
# Not inside a longer number, nor after "+" (an international phone number).
CANDIDATE = (
    rf"(?<![0-9+])(?:[3-6](?:{_NEXT}[0-9]){{12,18}}"
    rf"|(?:2{_NEXT}[2-7]|8{_NEXT}[12])(?:{_NEXT}[0-9]){{11,17}})(?![0-9])"
)


def validate(text: str, start: int, end: int) -> int | None:
    """The longest run of whole digit groups from ``start`` that is a card number."""
    for stop, count in reversed(list(group_ends(text, start, end))):
        if 13 <= count <= 19 and luhn.is_valid(alnum(text, start, stop)):
            return stop
    return None


DETECTOR = Detector("card_number", CANDIDATE, validate)
