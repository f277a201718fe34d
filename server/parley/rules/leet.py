"""Leetspeak in rules that look for words: ``k1ll mys3lf`` matches ``kill myself``.

Rather than fold digits to letters in the text (which would break every rule
that looks for numbers, and cannot say whether ``1`` stands for ``i`` or
``l``), a block or escalation pattern is widened where it names a letter:
each literal letter, and each character class containing letters, also
accepts the characters written for it. ``kill`` becomes
``k[i1!|][l1|][l1|]``, so ``k1ll``, ``ki11`` and ``k!ll`` all match, while a
class such as ``[0-9]`` in the same pattern still means digits. The pattern
is rewritten once, when the rule loads, and then checked like any other.
Its ``\b`` becomes a looser word edge, so ``$kip`` and ``!gnore`` start words.
"""

from __future__ import annotations

import re
from typing import Any

from parley.rules.regex_tree import char_node, rewrite_chars

# What stands in for each letter. Upper case follows from the rule's ignore_case.
LEET: dict[str, str] = {
    "a": "4@",
    "b": "8",
    "e": "3",
    "g": "9",
    "i": "1!|",
    "l": "1|",
    "o": "0",
    "s": "5$",
    "t": "7+",
}


# "\b" before "$kip" or after "k!ll!" must still hold, though "$" and "!" are not word
# characters: a word edge is anywhere but between two word characters. (One assertion,
# not an alternation of two, so it adds no backtracking paths.)
WORD_EDGE = r"(?!(?<=\w)\w)"


def leet_source(source: str, *, ignore_case: bool) -> str:
    """``source`` with every letter it names also matching that letter's stand-ins."""
    return rewrite_chars(source, ignore_case=ignore_case, rewrite=_widen, boundary=WORD_EDGE)


def _widen(name: str, av: Any, ignore_case: bool) -> str | None:
    node = char_node(name, av, ignore_case)
    if node is None or name not in ("LITERAL", "IN") or node.fragment.startswith("[^"):
        return None  # ".", negations: widening them would narrow what they exclude
    extra = sorted(
        {
            stand_in
            for letter, stand_ins in LEET.items()
            if node.matches(letter) or node.matches(letter.upper())
            for stand_in in stand_ins
            if not node.matches(stand_in)
        }
    )
    if not extra:
        return None
    members = node.fragment[1:-1] if name == "IN" else node.fragment
    return f"[{members}{''.join(re.escape(c) for c in extra)}]"
