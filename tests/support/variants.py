"""Generators of the ways an attacker rewrites text, shared by the rule tests.

Each strategy turns a piece of text into a variant that renders (nearly) the
same or reads the same to a person: other separators and spaces, invisible
characters, digits of other scripts, case, homoglyphs from the Unicode TR39
confusables data, leetspeak, Markdown emphasis. tests/test_rules_variants.py
checks the generators themselves.
"""

from __future__ import annotations

import re
import string
import unicodedata
from functools import cache

from disarm import normalize_confusables
from hypothesis import strategies as st
from stdnum import iban, luhn, numdb

SPACES = ["\u00a0", "\u2009", "\u2002", "\u2007", "\u202f", "\u3000", "\t", "\n"]
INVISIBLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u180e"]
# Digit zero of other scripts: each is followed by one to nine.
DIGIT_ZEROS = [
    "\uff10",  # fullwidth
    "\u0660",  # Arabic-Indic
    "\u06f0",  # Extended Arabic-Indic
    "\u0966",  # Devanagari
    "\u09e6",  # Bengali
    "\u0a66",  # Gurmukhi
    "\u0e50",  # Thai
    "\u0f20",  # Tibetan
    "\u1040",  # Myanmar
    "\u17e0",  # Khmer
    "\u07c0",  # N'Ko
    "\U0001d7ce",  # mathematical bold
    "\U0001d7d8",  # mathematical double-struck
]
# Between the digits of a number: at most two characters once normalised.
SEPARATORS = [
    "",
    " ",
    "  ",
    ".",
    "-",
    "/",
    " -",
    "/ ",
    "\u00a0",
    "\u00a0\u00a0",
    "\u2009",
    "\u200b",
    "\u200d",
    " \u200b",
    "\u2060-",
]
LEET = {"a": "4@", "e": "3", "i": "1!", "l": "1", "o": "0", "s": "5$", "t": "7"}
_SCRIPT_RANGES = [
    (0x80, 0x2000),  # Latin extended, IPA, Greek, Cyrillic, Armenian, ...
    (0x13A0, 0x1400),  # Cherokee
    (0xA4D0, 0xA500),  # Lisu
    (0xFF21, 0xFF5B),  # fullwidth letters
    (0x1D400, 0x1D800),  # mathematical alphanumerics
]


@cache
def homoglyph_table() -> dict[str, tuple[str, ...]]:
    """Non-ASCII letters whose TR39 prototype is each Latin letter (lower-cased).

    Left out: the few compatibility characters whose NFKC form has another prototype
    (U+03F9, a lunate sigma that looks like C, is a sigma to NFKC): the view applies
    NFKC first, and for most of those characters that is the better reading.
    """
    found: dict[str, list[str]] = {}
    for low, high in _SCRIPT_RANGES:
        for char in map(chr, range(low, high)):
            if not unicodedata.category(char).startswith("L"):
                continue
            prototype = normalize_confusables(char, digit_policy="preserve")
            if not (len(prototype) == 1 and prototype.isascii() and prototype.isalpha()):
                continue
            compatible = unicodedata.normalize("NFKC", char)
            again = normalize_confusables(compatible, digit_policy="preserve")
            if again.lower() != prototype.lower():
                continue
            found.setdefault(prototype.lower(), []).append(char)
    return {letter: tuple(chars) for letter, chars in found.items()}


# -- strategies ---------------------------------------------------------------------------------


def separated(digits: str) -> st.SearchStrategy[str]:
    """``digits`` with a separator (maybe none) drawn for every gap between two of them."""
    count = len(digits) - 1
    seps = st.lists(st.sampled_from(SEPARATORS), min_size=count, max_size=count)
    return seps.map(
        lambda drawn: digits[0] + "".join(s + d for s, d in zip(drawn, digits[1:], strict=True))
    )


def in_script(text: str, zero: str) -> str:
    """ASCII digits of ``text`` written in the script whose zero is ``zero``."""
    return "".join(chr(ord(zero) + int(c)) if c in string.digits else c for c in text)


def digit_scripts(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from(["0", *DIGIT_ZEROS]).map(lambda zero: in_script(text, zero))


def recased(text: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(text), max_size=len(text))
    return flips.map(
        lambda up: "".join(c.upper() if u else c.lower() for c, u in zip(text, up, strict=True))
    )


def disguised_word(word: str, kinds: tuple[str, ...]) -> st.SearchStrategy[str]:
    """``word`` with some letters replaced: homoglyphs, leetspeak, invisible characters."""
    table = homoglyph_table()

    def letter(char: str) -> st.SearchStrategy[str]:
        options: list[str] = [char]
        if "homoglyph" in kinds:
            options += table.get(char.lower(), ())
        if "leet" in kinds:
            options += LEET.get(char.lower(), "")
        choice = st.sampled_from(options)
        if "invisible" in kinds:
            return st.tuples(choice, st.sampled_from(["", "", *INVISIBLES])).map("".join)
        return choice

    return st.tuples(*(letter(c) for c in word)).map("".join)


EMPHASIS = ["", "", "**", "*", "_", "__", "~~", "`", "***"]


def emphasised(words: list[str]) -> st.SearchStrategy[list[str]]:
    """Each word wrapped in Markdown emphasis (or not), as a model or user writes it."""
    marks = st.lists(st.sampled_from(EMPHASIS), min_size=len(words), max_size=len(words))
    return marks.map(lambda ms: [f"{m}{w}{m[::-1]}" for w, m in zip(words, ms, strict=True)])


def gaps(count: int) -> st.SearchStrategy[list[str]]:
    """Whitespace between words: runs of any spaces, maybe with invisible characters."""
    gap = st.lists(st.sampled_from([" ", *SPACES, *INVISIBLES]), min_size=1, max_size=4).map(
        "".join
    )
    return st.lists(
        gap.filter(lambda g: any(c.isspace() for c in g)), min_size=count, max_size=count
    )


def phrase_variants(
    phrase: str, kinds: tuple[str, ...] = ("homoglyph", "invisible", "case")
) -> st.SearchStrategy[str]:
    """``phrase`` as an attacker may write it: every listed kind of disguise, mixed."""
    words = phrase.split()

    @st.composite
    def build(draw: st.DrawFn) -> str:
        disguised = [draw(disguised_word(word, kinds)) for word in words]
        if "case" in kinds:
            disguised = [draw(recased(word)) if word.isascii() else word for word in disguised]
        if "markdown" in kinds:
            disguised = draw(emphasised(disguised))
        spaces = draw(gaps(len(words) - 1)) if "spacing" in kinds else [" "] * (len(words) - 1)
        return disguised[0] + "".join(s + w for s, w in zip(spaces, disguised[1:], strict=True))

    return build()


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    """Valid card numbers: 13 to 19 digits in the networks' ranges, Luhn check digit last."""
    length = draw(st.integers(min_value=13, max_value=19))
    start = draw(st.sampled_from(["22", "25", "27", "3", "4", "5", "6", "81", "82"]))
    body = start + draw(
        st.text(
            alphabet=string.digits,
            min_size=length - 1 - len(start),
            max_size=length - 1 - len(start),
        )
    )
    return body + luhn.calc_check_digit(body)


# Countries whose BBANs python-stdnum checks only for structure (no national checksum).
IBAN_COUNTRIES = ["GB", "DE", "FR", "CH", "NL", "IE", "AT", "DK", "PL", "SE", "IT", "PT"]
_CLASSES = {
    "n": string.digits,
    "a": string.ascii_uppercase,
    "c": string.digits + string.ascii_uppercase,
}


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(IBAN_COUNTRIES))
    structure = numdb.get("iban").info(country)[0][1]["bban"]
    bban = "".join(
        draw(st.text(alphabet=_CLASSES[kind], min_size=int(n), max_size=int(n)))
        for n, kind in re.findall(r"([0-9]+)!([nac])", structure)
    )
    return country + iban.calc_check_digits(f"{country}00{bban}") + bban


def grouped(text: str, size: int = 4, separator: str = " ") -> str:
    return separator.join(text[i : i + size] for i in range(0, len(text), size))
