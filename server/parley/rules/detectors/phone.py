"""Telephone numbers, recognised by Google's libphonenumber (the ``phonenumbers`` port).

A candidate is a run of 7 to 17 digits with separators (at most two in a
row), optionally after ``+`` or inside ``(...)``. ``PhoneNumberMatcher``
then decides, with leniency ``VALID``: the number must be a valid number of
its country according to libphonenumber's numbering-plan metadata (so most
order numbers are not phone numbers, and neither are the unassigned ``555``
numbers of films), pager and voicemail-access ranges are left out (any six
digits after 16 are a German pager number), and one that starts like a date
(``2024-11-21``, ``21.11.2024``) is not taken for one. Numbers written with a country code
(``+44 20 7946 0958``, ``0044 ...``) are recognised whatever the rule says;
numbers written the national way are read as numbers of each of the rule's
``regions`` in turn (``regions: [US, GB, DE]``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import lru_cache, partial

from phonenumbers import Leniency, PhoneNumberMatcher, PhoneNumberType, number_type

from parley.rules.detectors.base import Detector

# Not inside a word or a number ("978-0-306-40615-7" is an ISBN), nor after a currency
# sign or "#"; at most two separators in a row, so "$164.00 - 1900" is not one number.
CANDIDATE = (
    r"(?<![\w+#$\u00a3\u20ac\u00a5])(?<![0-9][\-./])"
    r"(?:\+[ ]?)?\(?[0-9](?:[ ./()\-]{0,2}[0-9]){6,16}(?![0-9])"  # 7 to 17 digits
)
_DATE = re.compile(
    r"(?:1[89]|2[01])[0-9]{2}[\-./][0-9]{1,2}[\-./][0-9]{1,2}(?![0-9])"
    r"|[0-9]{1,2}[\-./][0-9]{1,2}[\-./](?:1[89]|2[01])?[0-9]{2}(?![0-9])"
)
# German pager numbers are any six or seven digits after 16: order numbers, mostly.
_NOT_PERSONAL = frozenset({PhoneNumberType.PAGER, PhoneNumberType.VOICEMAIL})
_INTERNATIONAL_ONLY = "ZZ"  # libphonenumber's "unknown region": only +CC numbers parse
_MAX_CUTS = 3  # shorter readings tried when a number has another glued on after a space
_MIN_DIGITS = 7


def detector(regions: tuple[str, ...]) -> Detector:
    check: Callable[[str, int, int], int | None] = partial(
        _validate, regions or (_INTERNATIONAL_ONLY,)
    )
    return Detector("phone_number", CANDIDATE, check)


def _validate(regions: tuple[str, ...], text: str, start: int, end: int) -> int | None:
    candidate = text[start:end]
    if _DATE.match(candidate):
        return None  # "2042-01-01 - 10" is a date and a number, whatever the plan says
    length = _number_length(candidate, regions)
    return None if length is None else start + length


@lru_cache(maxsize=4096)
def _number_length(candidate: str, regions: tuple[str, ...]) -> int | None:
    """How much of ``candidate`` from its start is one valid number, if any.

    Cached: a message repeating one number pattern costs one library call.
    """
    for cut in _cuts(candidate):
        for region in regions:
            first = next(iter(PhoneNumberMatcher(candidate[:cut], region, Leniency.VALID)), None)
            if first is not None and first.start == 0:
                return None if number_type(first.number) in _NOT_PERSONAL else int(first.end)
    return None


def _cuts(candidate: str) -> Iterator[int]:
    """The whole candidate, then shorter prefixes ending before a space (longest first).

    Only prefixes of seven digits or more: no shorter number is valid anywhere.
    """
    yield len(candidate)
    cut = len(candidate)
    for _ in range(_MAX_CUTS):
        cut = candidate.rfind(" ", 0, cut)
        if sum(c.isdigit() for c in candidate[:cut]) < _MIN_DIGITS:
            return
        yield cut
