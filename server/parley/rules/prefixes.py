"""Could a match still start here? A cheap test on a pattern's first characters.

The streaming filter must hold back text that may become part of a match
once more of the reply arrives. Holding everything within the longest match
would delay every reply by that much, so for each pattern we list its
possible first :data:`DEPTH` characters (zero-width assertions skipped,
which only widens the list) and compile them into one regex that succeeds
at a position when the text there agrees with some start of the pattern, up
to the end of the text received so far (``\\Z``). Where it fails, no match
can begin whatever comes next, and the text can be released at once.
"""

from __future__ import annotations

import re
from typing import Any

from parley.rules.regex_tree import (
    REPEATS,
    ZERO_WIDTH,
    CharNode,
    char_node,
    parse,
    scoped_ignore_case,
)

DEPTH = 6
MAX_SEQUENCES = 256
Sequence_ = tuple[CharNode, ...]


class _TooMany(Exception):
    pass


def prefix_source(source: str, *, ignore_case: bool) -> str:
    """A regex that matches at ``p`` if a match of ``source`` could begin at ``p``."""
    items = list(parse(source, re.IGNORECASE if ignore_case else 0))
    for depth in range(DEPTH, 0, -1):
        try:
            sequences = _sequences(items, ignore_case, depth)
        except _TooMany:
            continue
        if not sequences:
            break
        return "|".join(_nested(seq) for seq in sorted(sequences, key=_key))
    return r"(?s:.)"  # cannot tell: assume a match may begin anywhere


def _key(sequence: Sequence_) -> list[str]:
    return [node.source() for node in sequence]


def _nested(sequence: Sequence_) -> str:
    r"""``a(?:\Z|b(?:\Z|c))``: the text agrees with ``abc`` as far as it goes."""
    text = ""
    for node in reversed(sequence):
        text = node.source() + (f"(?:\\Z|{text})" if text else "")
    return f"(?:{text})"


def _sequences(items: list[Any], ignore_case: bool, depth: int) -> set[Sequence_]:
    """First-``depth`` character paths through ``items``; shorter ones end the pattern."""
    paths: set[Sequence_] = {()}
    for op, av in items:
        grown: set[Sequence_] = set()
        for path in paths:
            if len(path) >= depth:
                grown.add(path)
                continue
            for tail in _element(str(op), av, ignore_case, depth - len(path)):
                grown.add(path + tail)
        if len(grown) > MAX_SEQUENCES:
            raise _TooMany
        paths = grown
    return paths


def _element(name: str, av: Any, ignore_case: bool, depth: int) -> set[Sequence_]:
    node = char_node(name, av, ignore_case)
    if node is not None:
        return {(node,)}
    if name in ZERO_WIDTH:
        return {()}
    if name == "SUBPATTERN":
        return _sequences(list(av[3]), scoped_ignore_case(av, ignore_case), depth)
    if name == "ATOMIC_GROUP":
        return _sequences(list(av), ignore_case, depth)
    if name == "BRANCH":
        found: set[Sequence_] = set()
        for branch in av[1]:
            found |= _sequences(list(branch), ignore_case, depth)
        return found
    if name in REPEATS:
        return _repeat(int(av[0]), int(av[1]), list(av[2]), ignore_case, depth)
    raise ValueError(f"unsupported construct {name.lower()}")


def _repeat(low: int, high: int, body: list[Any], ignore_case: bool, depth: int) -> set[Sequence_]:
    once = _sequences(body, ignore_case, depth)
    found: set[Sequence_] = {()} if low == 0 else set()
    level: set[Sequence_] = {()}
    for count in range(1, high + 1):
        level = {
            path if len(path) >= depth else (path + tail)[:depth]
            for path in level
            for tail in (once if len(path) < depth else {()})
        }
        full = all(len(path) >= depth for path in level)
        if count >= low or full:
            found |= level  # once full, later rounds cannot change the first characters
        if len(found) > MAX_SEQUENCES:
            raise _TooMany
        if full:
            break
    return found
