"""What one character of text becomes in the normalised view rules match against.

Each character folds on its own, so the view of a text can be built a chunk
at a time (see :mod:`parley.rules.normalize`). In order:

* invisible characters (format controls such as zero-width spaces and joiners,
  soft hyphens, bidi controls, tag characters, variation selectors, Hangul
  fillers, other controls) and combining marks become nothing: an accent or a
  zero-width joiner must not split a word a rule is looking for;
* whitespace of any kind (NBSP, thin and ideographic spaces, the braille
  blank) becomes one ASCII space; runs are collapsed later;
* NFKC compatibility folding: fullwidth forms, ligatures, circled and
  mathematical letters and digits become their plain forms (fullwidth ``@``,
  U+FF20, to ``@``);
* decimal digits of every script become ASCII digits (``٤`` and ``४`` to ``4``);
* other non-ASCII characters lose their accents and are mapped to their
  Unicode TR39 confusables prototype by ``disarm`` (Cyrillic small
  Byelorussian-Ukrainian i, U+0456, to Latin ``i``; the right single quotation
  mark to ``'``), then dash punctuation becomes ``-``.

ASCII is never remapped. TR39 puts ``l``, ``1`` and ``I`` in one class and
``0`` with ``O``, and maps ``m`` to ``rn``: applying that to ASCII would turn
every version number and order code into letters and let an ordinary word
match a number detector. The letters-that-look-like-digits rows of TR39
(Cyrillic capital ze, U+0417, to ``3``) are left out for the same reason. Leetspeak is not
folded here either: rules that want it match digits as letters themselves
(see :mod:`parley.rules.leet`).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from disarm import normalize_confusables

# Default-ignorable code points that are not in category Cf or Mn: they render as
# nothing (or as blank space the reader never notices).
_INVISIBLE = frozenset("\u115f\u1160\u17b4\u17b5\u3164\uffa0")
_EXTRA_SPACES = frozenset("\u2800")  # BRAILLE PATTERN BLANK looks like a space
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})


@lru_cache(maxsize=8192)
def fold_char(char: str) -> str:
    """The view of one character: usually one character, sometimes none or several."""
    if char.isspace() or char in _EXTRA_SPACES:
        return " "
    if char.isascii():
        return "" if unicodedata.category(char) == "Cc" else char
    if char in _INVISIBLE or unicodedata.category(char) in _DROPPED_CATEGORIES:
        return ""
    return "".join(_fold_compatible(c) for c in unicodedata.normalize("NFKC", char))


def _fold_compatible(char: str) -> str:
    """One character of an NFKC result."""
    if char.isspace():
        return " "
    if char.isascii():
        return char
    category = unicodedata.category(char)
    if category in _DROPPED_CATEGORIES:
        return ""
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    if category == "Pd":
        return "-"
    # digit_policy="preserve": a letter that looks like a digit stays a letter.
    prototype = normalize_confusables(_strip_marks(char), digit_policy="preserve")
    return "".join("-" if unicodedata.category(c) == "Pd" else c for c in _strip_marks(prototype))


def _strip_marks(text: str) -> str:
    """``é`` to ``e``; characters without a decomposition are unchanged."""
    decomposed = unicodedata.normalize("NFD", text)
    if decomposed == text:
        return text
    bare = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))
    return unicodedata.normalize("NFC", bare)
