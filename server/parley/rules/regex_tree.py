"""The stdlib regex parse tree: single characters taken out of it, partial matching, rewriting.

Both the safety analysis and the streaming filter walk the tree that ``re``
itself builds (``re._parser``), so they see exactly what the engine will run.
A :class:`CharNode` is one consumed character position, kept as a regex
fragment so it can be tested and compared.

:func:`partial_source` rewrites a pattern into one that matches at ``p``
where the original matches *or could still match once more text arrives*:
the streaming filter's "may a match begin here?" test. It is built from the
same tree and run by the same engine, so it agrees with ``re`` on every
character class, case rule and word boundary.

:func:`rewrite_chars` regenerates a pattern with some of its characters
replaced (how :mod:`parley.rules.leet` widens letters to their stand-ins).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# The parser is private but has been stable since 3.11; typeshed has no stubs for it.
_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")
MAXREPEAT: int = _constants.MAXREPEAT
REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")

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
    if name == "ANY":  # the DOTALL flag is not tracked here: assume it can match anything
        return CharNode("(?s:.)", ignore_case, None)
    fragment = _char_fragment(name, av)
    if fragment is None:
        return None
    if name == "LITERAL":
        return CharNode(fragment, ignore_case, frozenset({chr(av)}))
    if name != "IN":
        return CharNode(fragment, ignore_case, None)
    members: set[str] | None = set()
    for item_op, item_av in av:
        item = str(item_op)
        if members is None:
            break
        if item == "LITERAL":
            members.add(chr(item_av))
        elif item == "RANGE" and len(members) + item_av[1] - item_av[0] < _ENUMERABLE:
            members |= {chr(code) for code in range(item_av[0], item_av[1] + 1)}
        else:  # a negation, a category or a large range
            members = None
    return CharNode(fragment, ignore_case, frozenset(members) if members else None)


def _char_fragment(name: str, av: Any) -> str | None:
    """The source of one consumed character exactly as written, or None if not one.

    Case and dot-all flags are not part of the fragment: they come from the
    enclosing pattern or scoped group, as in the original.
    """
    if name == "LITERAL":
        return re.escape(chr(av))
    if name == "NOT_LITERAL":
        return f"[^{re.escape(chr(av))}]"
    if name == "ANY":
        return "."
    if name != "IN":
        return None
    parts: list[str] = []
    for item_op, item_av in av:
        item = str(item_op)
        if item == "NEGATE":
            parts.insert(0, "^")
        elif item == "LITERAL":
            parts.append(re.escape(chr(item_av)))
        elif item == "RANGE":
            start, stop = item_av
            parts.append(f"{re.escape(chr(start))}-{re.escape(chr(stop))}")
        elif item == "CATEGORY":
            parts.append(_CATEGORIES[str(item_av)])
        else:
            raise PatternError(f"unsupported character class item {item.lower()}")
    return f"[{''.join(parts)}]"


def scoped_ignore_case(av: Any, ignore_case: bool) -> bool:
    _group, add, remove, _body = av
    if add & re.IGNORECASE:
        return True
    if remove & re.IGNORECASE:
        return False
    return ignore_case


# -- partial matching -------------------------------------------------------------------------

_END = r"\Z"  # the end of the text received so far
_NEVER = "(?!)"
_ANCHORS = {
    "AT_BEGINNING": "^",
    "AT_BEGINNING_STRING": r"\A",
    "AT_END": "$",
    "AT_END_STRING": r"\Z",
}
_FLAG_LETTERS = (
    (re.IGNORECASE, "i"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.ASCII, "a"),
    (re.LOCALE, "L"),
    (re.UNICODE, "u"),
)  # VERBOSE is left out: the regenerated source has no layout to ignore


def partial_source(source: str, *, ignore_case: bool) -> str:
    r"""A pattern that matches at ``p`` if ``source`` matches at ``p`` in some continuation.

    A match attempt on text that is still arriving can succeed, fail, or run
    into the end of the text received so far: a *partial* match, which more
    text may complete. The rewritten pattern succeeds in the first and last
    case, so ``search`` finds the first position where a match may begin.

    Each consumed character ``c`` becomes ``(?:c|\Z)``: once a path reaches the
    end, the rest of it succeeds without consuming anything. Assertions are
    rewritten by what they may still become. Where the original needs an
    assertion to hold, it is taken as true at the end of the text (a ``\b``
    there depends on the next character); inside a negative look-around the
    body must instead *certainly* match, so there characters are matched only
    as received and a word boundary at the end counts as false. The result
    over-approximates: it may report a partial match that no continuation
    completes (an atomic group is relaxed to a plain one, a look-behind at
    the end is taken as true), never miss one.
    """
    items = parse(source, re.IGNORECASE if ignore_case else 0)
    body = _sequence(items, possible=True, open_end=True)
    return f"(?{'i' if ignore_case else '-i'}:{body})"


def _sequence(items: Any, *, possible: bool, open_end: bool) -> str:
    """``possible``: match where the original may still match, else only where it must.

    ``open_end``: consumed characters may run into the end (not in a look-behind,
    whose characters have all arrived, nor where a match must be certain).
    """
    return "".join(_partial(str(op), av, possible, open_end) for op, av in items)


def _partial(name: str, av: Any, possible: bool, open_end: bool) -> str:
    fragment = _char_fragment(name, av)
    if fragment is not None:
        return f"(?:{fragment}|{_END})" if open_end else fragment
    if name in REPEATS:
        return _partial_repeat(name, av, possible, open_end)
    if name == "SUBPATTERN":
        _group, add, remove, body = av
        removed = _flags(remove)
        inner = _sequence(body, possible=possible, open_end=open_end)
        return f"(?{_flags(add)}{'-' if removed else ''}{removed}:{inner})"
    if name == "ATOMIC_GROUP":
        # Which path an atomic group commits to can depend on text yet to come.
        inner = _sequence(av, possible=possible, open_end=open_end)
        return f"(?:{inner})" if possible else _NEVER
    if name == "BRANCH":
        branches = (_sequence(b, possible=possible, open_end=open_end) for b in av[1])
        return f"(?:{'|'.join(branches)})"
    if name in ("ASSERT", "ASSERT_NOT"):
        direction, body = av
        positive = name == "ASSERT"
        inner_possible = possible if positive else not possible
        behind = direction < 0
        inner = _sequence(body, possible=inner_possible, open_end=inner_possible and not behind)
        assertion = f"(?{'<' if behind else ''}{'=' if positive else '!'}{inner})"
        return f"(?:{assertion}|{_END})" if possible else assertion
    if name == "AT":
        at = str(av)
        if at in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
            boundary = r"\b" if at == "AT_BOUNDARY" else r"\B"
            # At the end the answer depends on the next character.
            return f"(?:{boundary}|{_END})" if possible else f"{boundary}(?!{_END})"
        anchor = _ANCHORS.get(at)
        if anchor is None:
            raise PatternError(f"unsupported assertion {at.lower()}")
        # Where the text is cut, its start and end are not the reply's.
        return f"(?:{anchor}|{_END})" if possible else _NEVER
    raise PatternError(f"unsupported construct {name.lower()}")


def _partial_repeat(name: str, av: Any, possible: bool, open_end: bool) -> str:
    low, high, body = int(av[0]), int(av[1]), list(av[2])
    if name == "POSSESSIVE_REPEAT" and not possible:
        return _NEVER  # like an atomic group
    lazy = "?" if name == "MIN_REPEAT" else ""
    fragment = _char_fragment(str(body[0][0]), body[0][1]) if len(body) == 1 else None
    if fragment is not None and open_end:
        # Keep the single-character loop: fewer than ``low`` are enough at the end.
        full = f"{fragment}{_count(low, high)}{lazy}"
        if low == 0:
            return full
        fewer = f"{fragment}{_count(0, low - 1)}" if low > 1 else ""
        return f"(?:{full}|{fewer}{_END})"
    inner = _sequence(body, possible=possible, open_end=open_end)
    return f"(?:{inner}){_count(low, high)}{lazy}"


def _count(low: int, high: int) -> str:
    if high == MAXREPEAT:
        return f"{{{low},}}"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _flags(bits: int) -> str:
    return "".join(letter for flag, letter in _FLAG_LETTERS if bits & flag)


# -- rewriting ----------------------------------------------------------------------------------

# (op name, argument, ignore_case) of one consumed character -> its new fragment, or None
CharRewrite = Callable[[str, Any, bool], "str | None"]


def rewrite_chars(
    source: str, *, ignore_case: bool, rewrite: CharRewrite, boundary: str = r"\b"
) -> str:
    """``source`` regenerated from its parse tree, each consumed character as ``rewrite``
    says and each ``\b`` as ``boundary``.

    Groups come back non-capturing; rules never read groups, so nothing else changes.
    """
    items = parse(source, re.IGNORECASE if ignore_case else 0)
    return _Renderer(rewrite, boundary).render(items, ignore_case)


@dataclass(frozen=True)
class _Renderer:
    rewrite: CharRewrite
    boundary: str

    def render(self, items: Any, ignore_case: bool) -> str:
        return "".join(self._one(str(op), av, ignore_case) for op, av in items)

    def _one(self, name: str, av: Any, ignore_case: bool) -> str:
        return _render_one(name, av, ignore_case, self)


def _render_one(name: str, av: Any, ignore_case: bool, renderer: _Renderer) -> str:
    fragment = _char_fragment(name, av)
    if fragment is not None:
        return renderer.rewrite(name, av, ignore_case) or fragment
    if name in REPEATS:
        low, high, body = av
        mode = {"MIN_REPEAT": "?", "POSSESSIVE_REPEAT": "+"}.get(name, "")
        return f"(?:{renderer.render(body, ignore_case)}){_count(low, high)}{mode}"
    if name == "SUBPATTERN":
        _group, add, remove, body = av
        removed = _flags(remove)
        inner = renderer.render(body, scoped_ignore_case(av, ignore_case))
        return f"(?{_flags(add)}{'-' if removed else ''}{removed}:{inner})"
    if name == "ATOMIC_GROUP":
        return f"(?>{renderer.render(av, ignore_case)})"
    if name == "BRANCH":
        return "(?:" + "|".join(renderer.render(b, ignore_case) for b in av[1]) + ")"
    if name in ("ASSERT", "ASSERT_NOT"):
        direction, body = av
        kind = f"{'<' if direction < 0 else ''}{'=' if name == 'ASSERT' else '!'}"
        return f"(?{kind}{renderer.render(body, ignore_case)})"
    if name == "AT":
        at = str(av)
        anchor = {"AT_BOUNDARY": renderer.boundary, "AT_NON_BOUNDARY": r"\B", **_ANCHORS}.get(at)
        if anchor is None:
            raise PatternError(f"unsupported assertion {at.lower()}")
        return anchor
    raise PatternError(f"unsupported construct {name.lower()}")
