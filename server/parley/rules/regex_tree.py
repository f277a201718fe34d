"""The stdlib regex parse tree, and single characters taken out of it.

Both the safety analysis and the streaming filter's prefix check walk the
tree that ``re`` itself builds (``re._parser``), so they see exactly what the
engine will run. A :class:`CharNode` is one consumed character position,
kept as a regex fragment so it can be tested and recombined.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# The parser is private but has been stable since 3.11; typeshed has no stubs for it.
_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")
MAXREPEAT: int = _constants.MAXREPEAT
REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
ZERO_WIDTH = ("AT", "ASSERT", "ASSERT_NOT")

_ENUMERABLE = 512  # character classes up to this size are checked char by char
_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}


def parse(source: str, flags: int) -> Any:
    """The parse tree (a list of ``(op, argument)``); raises ``re.error``."""
    return _parser.parse(source, flags)


class PatternError(ValueError):
    """A pattern was rejected; the message says why in the author's terms."""


@dataclass(frozen=True)
class CharNode:
    """One consumed character, as a regex fragment plus its literal members if few."""

    fragment: str
    ignore_case: bool
    members: frozenset[str] | None

    def matches(self, char: str) -> bool:
        return _compiled(self.fragment, self.ignore_case).fullmatch(char) is not None

    def source(self) -> str:
        return f"(?{'i' if self.ignore_case else '-i'}:{self.fragment})"


@lru_cache(maxsize=1024)
def _compiled(fragment: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(fragment, re.IGNORECASE if ignore_case else 0)


def _variants(char: str) -> set[str]:
    return {char, char.lower(), char.upper(), char.swapcase(), char.casefold()}


def disjoint(a: CharNode, b: CharNode) -> bool:
    """True only when provably no character matches both nodes."""
    for small, other in ((a, b), (b, a)):
        if small.members is None:
            continue
        candidates: set[str] = set()
        for char in small.members:
            candidates |= _variants(char) if small.ignore_case else {char}
        return not any(len(c) == 1 and other.matches(c) for c in candidates)
    return False


def char_node(name: str, av: Any, ignore_case: bool) -> CharNode | None:
    if name == "LITERAL":
        char = chr(av)
        return CharNode(re.escape(char), ignore_case, frozenset({char}))
    if name == "NOT_LITERAL":
        return CharNode(f"[^{re.escape(chr(av))}]", ignore_case, None)
    if name == "ANY":
        return CharNode("(?s:.)", ignore_case, None)
    if name != "IN":
        return None
    parts: list[str] = []
    members: set[str] | None = set()
    for item_op, item_av in av:
        item = str(item_op)
        if item == "NEGATE":
            parts.insert(0, "^")
            members = None
        elif item == "LITERAL":
            parts.append(re.escape(chr(item_av)))
            members = None if members is None else members | {chr(item_av)}
        elif item == "RANGE":
            start, stop = item_av
            parts.append(f"{re.escape(chr(start))}-{re.escape(chr(stop))}")
            if members is not None and len(members) + stop - start < _ENUMERABLE:
                members |= {chr(code) for code in range(start, stop + 1)}
            else:
                members = None
        elif item == "CATEGORY":
            parts.append(_CATEGORIES[str(item_av)])
            members = None
        else:
            raise PatternError(f"unsupported character class item {item.lower()}")
    return CharNode(f"[{''.join(parts)}]", ignore_case, frozenset(members) if members else None)


def scoped_ignore_case(av: Any, ignore_case: bool) -> bool:
    _group, add, remove, _body = av
    if add & re.IGNORECASE:
        return True
    if remove & re.IGNORECASE:
        return False
    return ignore_case
