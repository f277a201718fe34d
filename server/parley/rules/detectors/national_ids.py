"""National identity numbers: US social security numbers and UK National Insurance numbers.

``us_ssn``: ``123-45-6789`` with any separator between the 3-2-4 groups, the
same one twice (``123 45 6789``, ``123.45.6789``, ``123 /45 /6789``; not
``100.01-1900``, a price and a year), checked by python-stdnum (area not 000,
666 or 900-999, group not 00, serial not 0000, and the numbers known to have
been published, such as 078-05-1120). Without separators nine digits are
just as likely an order number, so ``123456789`` counts only when the 40
characters before it name it: "SSN", "social security", "SS#".

``uk_nino``: ``AB 12 34 56 C``, with or without separators, in any case:
two prefix letters (not D, F, I, Q, U or V; the second not O either; not the
unallocated BG, GB, KN, NK, NT, TN or ZZ), six digits and a suffix A to D.
"""

from __future__ import annotations

import re

from stdnum.us import ssn

from parley.rules.detectors.base import GAP, SEPARATOR, Detector, alnum

_GROUP_SEPARATOR = rf"{SEPARATOR}{{1,2}}"
SSN_CANDIDATE = (
    rf"(?<![0-9])[0-9]{{3}}(?:{_GROUP_SEPARATOR}[0-9]{{2}}{_GROUP_SEPARATOR}|[0-9]{{2}})"
    r"[0-9]{4}(?![0-9])"
)
SSN_CONTEXT = 40
_SSN_NAMED = re.compile(
    r"\b(?:ssn\b|ss ?#|ss no\b|s\.s\.n\b|social ?security\b|soc\.? ?sec\b)", re.IGNORECASE
)
_NOT_DIGITS = re.compile(r"[^0-9]+")


def validate_ssn(text: str, start: int, end: int) -> int | None:
    if not ssn.is_valid(alnum(text, start, end)):
        return None
    separators = _NOT_DIGITS.findall(text, start, end)
    if separators and separators[0] != separators[1]:
        return None
    if not separators and not _SSN_NAMED.search(text, max(0, start - SSN_CONTEXT), start):
        return None
    return end


NINO_CANDIDATE = rf"(?<![^\W_])[A-Z]{{2}}(?:{GAP}[0-9]{{2}}){{3}}{GAP}[A-D](?![^\W_])"
_NINO_PREFIX = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]")
_NINO_UNALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def validate_nino(text: str, start: int, end: int) -> int | None:
    prefix = alnum(text, start, end)[:2].upper()
    if _NINO_PREFIX.fullmatch(prefix) is None or prefix in _NINO_UNALLOCATED:
        return None
    return end


SSN = Detector("us_ssn", SSN_CANDIDATE, validate_ssn, behind=SSN_CONTEXT)
NINO = Detector("uk_nino", NINO_CANDIDATE, validate_nino, ignore_case=True)
