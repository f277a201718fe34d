"""Telephone numbers, recognised by Google's libphonenumber (the ``phonenumbers`` port).

A candidate is a run of 6 to 17 digits with separators, optionally after
``+`` or inside ``(...)``. ``PhoneNumberMatcher`` then decides, with leniency
``VALID``: the number must be a valid number of its country according to
libphonenumber's numbering-plan metadata (so ``2024-11-21`` and most order
numbers are not phone numbers, and neither are the unassigned ``555``
numbers of films). Numbers written with a country code (``+44 20 7946
0958``, ``0044 ...``) are recognised whatever the rule says; numbers written
the national way are read as numbers of each of the rule's ``regions`` in
turn (``regions: [US, GB, DE]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache, partial

from phonenumbers import Leniency, PhoneNumberMatcher

from parley.rules.detectors.base import Detector

CANDIDATE = r"(?<![\w+])(?:\+[ ]?)?\(?[0-9](?:[ ./()\-]{0,3}[0-9]){5,16}(?![0-9])"
_INTERNATIONAL_ONLY = "ZZ"  # libphonenumber's "unknown region": only +CC numbers parse
_MAX_CUTS = 3  # shorter readings tried when a number has another glued on after a space


def detector(regions: tuple[str, ...]) -> Detector:
    check: Callable[[str, int, int], int | None] = partial(
        _validate, regions or (_INTERNATIONAL_ONLY,)
    )
    return Detector("phone_number", CANDIDATE, check)


def _validate(regions: tuple[str, ...], text: str, start: int, end: int) -> int | None:
    length = _number_length(text[start:end], regions)
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
                return int(first.end)
    return None


def _cuts(candidate: str) -> Iterator[int]:
    """The whole candidate, then shorter prefixes ending before a space (longest first)."""
    yield len(candidate)
    cut = len(candidate)
    for _ in range(_MAX_CUTS):
        cut = candidate.rfind(" ", 0, cut)
        if cut <= 0:
            return
        yield cut
