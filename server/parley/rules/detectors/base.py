"""What a detector is: a cheap, bounded regex that proposes, and code that confirms.

The candidate regex runs over the normalised view like any rule pattern (in
one alternation with the others, with the same partial matching while a
reply streams), so it is checked for safety when a rule set loads. Where it
matches, ``validate`` decides: it returns where the confirmed match ends (at
or before the candidate's end, for example without digits glued on from the
next number) or None, and never reads outside what the candidate's shape
declares (``behind`` characters of context before it, and its reach after).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

# (view text, candidate start, candidate end) -> end of the confirmed match, or None
Validator = Callable[[str, int, int], "int | None"]

# Between the digits of a number. In the view every run of whitespace (NBSP, thin
# spaces, newlines...) is one space and invisible characters are gone, so this
# covers "4111 1111", "4111\u00a0\u00a01111", "4111.1111", "4111 -1111", "4111/1111".
SEPARATOR = r"[ ./_\-]"
# At most two in a row: " - " (space, dash, space) is how ranges are written
# ("2024 - 2025", "$1,517.49 - 1900"), and must never join two numbers into one.
GAP = rf"{SEPARATOR}{{0,2}}"


@dataclass(frozen=True)
class Detector:
    name: str
    candidate: str  # regex over the view
    validate: Validator
    ignore_case: bool = False
    behind: int = 0  # view characters before a candidate that validate may read


def group_ends(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``(stop, count)`` after each run of letters or digits in ``text[start:end]``.

    ``count`` is how many letters and digits come before ``stop``: the places a
    number written in groups can end, shortest first.
    """
    count = 0
    for index in range(start, end):
        if text[index].isalnum():
            count += 1
            if index + 1 == end or not text[index + 1].isalnum():
                yield index + 1, count


def alnum(text: str, start: int, end: int) -> str:
    """The letters and digits of ``text[start:end]``, separators left out."""
    return "".join(c for c in text[start:end] if c.isalnum())
