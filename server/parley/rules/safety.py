"""Static checks that keep every rule pattern bounded and cheap to run.

Rule patterns are written by catalog authors and run on every message and
every streamed reply, so a pattern that can backtrack catastrophically is a
denial of service. Rather than time patterns at run time we reject dangerous
shapes at load, using the stdlib parser (``re._parser``):

* every quantifier has an upper bound (no ``*``, ``+`` or ``{n,}``), so each
  pattern has a finite longest match, which also bounds the hold-back buffer
  the streaming output filter needs;
* nothing that can match empty text is repeated, and there are no
  backreferences or conditionals;
* an upper bound on the backtracking paths tried from one start position is
  at most :data:`MAX_PATHS`. Nested or adjacent overlapping quantifiers
  multiply paths, so ``(a{1,9}){1,9}b`` or ``\\d{1,40}\\d{1,40}\\d{1,40}x`` are rejected,
  while ``\\d{4}[ -]?\\d{4}`` is accepted: a quantifier followed by
  characters it cannot match has only one way to continue.

The same walk measures what the streaming filter needs: the longest match,
and how far past and before its start a match attempt can look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from parley.rules.regex_tree import (
    MAXREPEAT,
    REPEATS,
    CharNode,
    PatternError,
    char_node,
    disjoint,
    parse,
    scoped_ignore_case,
)

__all__ = ["MAX_PATHS", "MAX_QUANTIFIER", "PatternError", "Shape", "analyse"]

MAX_PATHS = 1_000
MAX_QUANTIFIER = 1_000
_WORD_ASSERTIONS = {"AT_BOUNDARY", "AT_NON_BOUNDARY"}


@dataclass(frozen=True)
class _Follow:
    """What may come after a point in the pattern."""

    chars: tuple[CharNode, ...]  # the next consumed character matches one of these
    nullable: bool  # the rest can succeed without consuming anything
    guarded: bool  # an assertion on that empty path could still fail


_NOTHING = _Follow((), True, False)


@dataclass(frozen=True)
class Shape:
    min_width: int
    max_width: int
    reach: int  # characters a match attempt may examine from its start
    behind: int  # characters it may examine before its start
    paths: int


@dataclass(frozen=True)
class _Measure:
    lo: int
    hi: int
    reach: int
    behind: int


def analyse(source: str, *, ignore_case: bool, streaming: bool, max_width: int) -> Shape:
    """Parse, validate and measure ``source``; raise :class:`PatternError` if unsafe."""
    base = re.IGNORECASE if ignore_case else 0
    try:
        parsed = parse(source, base)
        re.compile(source, base)
        inline = parse(source, 0).state.flags & ~re.UNICODE
    except re.error as error:
        raise PatternError(f"invalid regular expression: {error}") from None
    # Rules are combined into one regex, where global flags are an error and group
    # names could clash.
    if inline:
        raise PatternError("inline global flags such as (?i) are not allowed; use ignore_case")
    if parsed.state.groupdict:
        raise PatternError("named groups are not allowed; use (?:...) instead")
    _check_shape(parsed, streaming)
    size = _measure(parsed)
    if size.lo == 0:
        raise PatternError("the pattern can match empty text")
    if size.hi > max_width:
        raise PatternError(f"the pattern can match {size.hi} characters; the limit is {max_width}")
    paths = _paths(list(parsed), ignore_case, _NOTHING)
    if paths > MAX_PATHS:
        raise PatternError(
            f"too much backtracking: more than {MAX_PATHS} ways to try each position; "
            "nested or overlapping quantifiers multiply, use fixed counts or character classes"
        )
    return Shape(size.lo, size.hi, size.reach, size.behind, paths)


def _check_shape(items: Any, streaming: bool) -> None:
    for op, av in items:
        name = str(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise PatternError("backreferences and conditionals are not allowed")
        if name == "AT" and streaming and str(av) not in _WORD_ASSERTIONS:
            raise PatternError(
                "anchors (^, $, \\A, \\Z) are not allowed in output patterns: replies are "
                "filtered as a stream"
            )
        if name in REPEATS:
            _, high, body = av
            if high == MAXREPEAT:
                raise PatternError(
                    "unbounded quantifier (*, + or {n,}); give an upper bound such as {1,40}"
                )
            if high > MAX_QUANTIFIER:
                raise PatternError(f"quantifier bound {high} is above {MAX_QUANTIFIER}")
            if high > 1 and _measure(body).lo == 0:
                raise PatternError("a quantified part can match empty text")
        for child in _children(name, av):
            _check_shape(child, streaming)


def _children(name: str, av: Any) -> list[Any]:
    if name in REPEATS:
        return [av[2]]
    if name == "SUBPATTERN":
        return [av[3]]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [av[1]]
    if name == "ATOMIC_GROUP":
        return [av]
    if name == "BRANCH":
        return list(av[1])
    return []


def _measure(items: Any) -> _Measure:
    lo = hi = reach = behind = 0
    for op, av in items:
        part = _measure_one(str(op), av)
        reach = max(reach, hi + part.reach)
        behind = max(behind, part.behind - lo)
        lo, hi = lo + part.lo, hi + part.hi
    return _Measure(lo, hi, max(reach, hi), behind)


def _measure_one(name: str, av: Any) -> _Measure:
    if name in ("LITERAL", "NOT_LITERAL", "IN", "ANY"):
        return _Measure(1, 1, 1, 0)
    if name == "AT":  # \b and friends peek at the characters on both sides
        return _Measure(0, 0, 1, 1)
    if name in ("ASSERT", "ASSERT_NOT"):
        direction, body = av
        inner = _measure(body)
        if direction < 0:
            return _Measure(0, 0, inner.reach, inner.hi + inner.behind)
        return _Measure(0, 0, inner.reach, inner.behind)
    if name in REPEATS:
        low, high, body = av
        inner = _measure(body)
        reach = (high - 1) * inner.hi + inner.reach if high else 0
        return _Measure(low * inner.lo, high * inner.hi, reach, inner.behind)
    if name in ("SUBPATTERN", "ATOMIC_GROUP"):
        return _measure(av[3] if name == "SUBPATTERN" else av)
    if name == "BRANCH":
        parts = [_measure(branch) for branch in av[1]]
        return _Measure(
            min(p.lo for p in parts),
            max(p.hi for p in parts),
            max(p.reach for p in parts),
            max(p.behind for p in parts),
        )
    raise PatternError(f"unsupported construct {name.lower()}")


def _first(items: list[Any], ignore_case: bool, follow: _Follow) -> _Follow:
    """Which characters can be consumed first, and whether nothing need be."""
    chars: list[CharNode] = []
    guarded = False
    for op, av in items:
        name = str(op)
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            guarded = True  # zero width: the first consumed character is still ahead
            continue
        part = _first_one(name, av, ignore_case)
        chars.extend(part.chars)
        guarded = guarded or part.guarded
        if not part.nullable:
            return _Follow(tuple(chars), False, guarded)
    return _Follow(tuple(chars) + follow.chars, follow.nullable, guarded or follow.guarded)


def _first_one(name: str, av: Any, ignore_case: bool) -> _Follow:
    node = char_node(name, av, ignore_case)
    if node is not None:
        return _Follow((node,), False, False)
    if name in REPEATS:
        inner = _first(list(av[2]), ignore_case, _NOTHING)
        return _Follow(inner.chars, av[0] == 0 or inner.nullable, inner.guarded)
    if name == "SUBPATTERN":
        return _first(list(av[3]), scoped_ignore_case(av, ignore_case), _NOTHING)
    if name == "ATOMIC_GROUP":
        return _first(list(av), ignore_case, _NOTHING)
    if name == "BRANCH":
        parts = [_first(list(branch), ignore_case, _NOTHING) for branch in av[1]]
        return _Follow(
            tuple(c for p in parts for c in p.chars),
            any(p.nullable for p in parts),
            any(p.guarded for p in parts),
        )
    raise PatternError(f"unsupported construct {name.lower()}")


def _paths(items: list[Any], ignore_case: bool, follow: _Follow) -> int:
    """Upper bound on the ways this sequence can hand over to what follows it."""
    total = 1
    for index, (op, av) in enumerate(items):
        rest = _first(items[index + 1 :], ignore_case, follow)
        total = min(total * _paths_one(str(op), av, ignore_case, rest), MAX_PATHS + 1)
    return total


def _paths_one(name: str, av: Any, ignore_case: bool, follow: _Follow) -> int:
    if name in REPEATS:
        return _repeat_paths(av, ignore_case, follow)
    if name in ("ASSERT", "ASSERT_NOT"):
        return _paths(list(av[1]), ignore_case, _NOTHING)
    if name == "SUBPATTERN":
        return _paths(list(av[3]), scoped_ignore_case(av, ignore_case), follow)
    if name == "ATOMIC_GROUP":
        return _paths(list(av), ignore_case, follow)
    if name == "BRANCH":
        return _branch_paths(list(av[1]), ignore_case, follow)
    return 1


def _branch_paths(branches: list[Any], ignore_case: bool, follow: _Follow) -> int:
    counts = [_paths(list(branch), ignore_case, follow) for branch in branches]
    firsts = [_first(list(branch), ignore_case, _NOTHING) for branch in branches]
    exclusive = not any(f.nullable for f in firsts) and all(
        disjoint(a, b)
        for i, left in enumerate(firsts)
        for right in firsts[i + 1 :]
        for a in left.chars
        for b in right.chars
    )
    # Alternatives that start with different characters cannot both get going.
    return max(counts) if exclusive else sum(counts)


def _repeat_paths(av: Any, ignore_case: bool, follow: _Follow) -> int:
    low, high, items = int(av[0]), int(av[1]), list(av[2])
    node = char_node(str(items[0][0]), items[0][1], ignore_case) if len(items) == 1 else None
    if node is not None:
        if low == high or (follow.nullable and not follow.guarded):
            return 1  # nothing to choose, or the rest cannot fail
        if not follow.nullable and follow.chars and all(disjoint(node, c) for c in follow.chars):
            return 1  # only the longest run can be followed by what comes next
        return high - low + 1
    again = _first(items, ignore_case, _NOTHING)
    inner_follow = _Follow(again.chars + follow.chars, follow.nullable, follow.guarded)
    per_round = _paths(items, ignore_case, inner_follow)
    total = 0
    for count in range(low, high + 1):
        total += min(per_round**count, MAX_PATHS + 1)
        if total > MAX_PATHS:
            break
    return total
