"""International bank account numbers, in any case and with any separators.

The candidate follows each country's registered BBAN structure (from the
IBAN registry that python-stdnum ships: ``GB`` is two check digits, four
letters and fourteen digits), with one or two separators allowed between
any two characters; between the first four (country code and check digits)
only ``.``, ``-``, ``/`` or ``_``, since "is 07" or "at 10" is ordinary
text. So ``GB82 WEST 1234 5698 7654 32``, ``gb82west...`` and
``GB82-WEST-1234...`` are candidates while ``BA2490 leaves at 06:45`` stops
being one at the first letter. python-stdnum then checks the mod-97 check
digits. The IBAN must end at a word boundary.
"""

from __future__ import annotations

import re
from itertools import groupby

from stdnum import iban, numdb

from parley.rules.detectors.base import GAP, Detector, alnum

_PART = re.compile(r"([0-9]+)!([nac])")
_CLASSES = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]"}
_NEXT = GAP
# Within the country code and check digits no spaces: "is 07" and "at 10" are words.
_TIGHT = r"[./_\-]{0,2}"


def _structures() -> dict[str, str]:
    """Country code to the regex of its BBAN, each character possibly after a separator."""
    found: dict[str, str] = {}
    for _length, low, high, props, _children in numdb.get("iban").prefixes:
        bban = str(props.get("bban", ""))
        if low == high and bban:
            parts = _PART.findall(bban)
            found[low] = "".join(f"(?:{_NEXT}{_CLASSES[kind]}){{{n}}}" for n, kind in parts)
    return found


def _candidate(structures: dict[str, str]) -> str:
    """One alternation, branching on the first letter, then the second: it never backtracks."""
    by_first = groupby(sorted(structures), key=lambda code: code[0])
    check_digits = f"{_TIGHT}[0-9]{_TIGHT}[0-9]"
    branches = [
        f"{first}{_TIGHT}(?:"
        + "|".join(f"{c[1]}{check_digits}{structures[c]}" for c in codes)
        + ")"
        for first, codes in by_first
    ]
    # The look-ahead fails most words at their second or third character, before the
    # alternation is tried at all: this runs at every word start of every reply.
    guard = f"(?=[A-Z]{_TIGHT}[A-Z]{_TIGHT}[0-9])"
    return rf"(?<![^\W_]){guard}(?:{'|'.join(branches)})(?![^\W_])"


CANDIDATE = _candidate(_structures())


def validate(text: str, start: int, end: int) -> int | None:
    return end if iban.is_valid(alnum(text, start, end).upper()) else None


DETECTOR = Detector("iban", CANDIDATE, validate, ignore_case=True)
