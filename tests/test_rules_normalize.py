"""The normalised view rules match against: what it folds, what it keeps, and its map back."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.rules.fold import fold_char
from parley.rules.normalize import MAX_REFERENCE, Normalizer, View, normalize
from support.variants import DIGIT_ZEROS, INVISIBLES, SPACES, homoglyph_table


def chunked_view(text: str, sizes: list[int]) -> tuple[View, int]:
    """The view built a chunk at a time as the streaming filter builds it (``feed_into``),
    and the most the normaliser ever had pending."""
    normalizer, view, start, turn, pending = Normalizer(), View(), 0, 0, 0
    while start < len(text):
        size = sizes[turn % len(sizes)]
        normalizer.feed_into(view, text[start : start + size])
        start, turn = start + size, turn + 1
        pending = max(pending, start - normalizer.committed)
    view.extend(normalizer.finish())
    return view, pending


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ign\u200bore all\u2060 previous\ufeff", "ignore all previous"),
        ("soft\u00adhyphen and\u200d joiner", "softhyphen and joiner"),
        ("a\u00a0\u2009\u3000 \t\n\r b", "a b"),
        ("\uff47\uff55\uff41\uff52\uff41\uff4e\uff54\uff45\uff45\uff44 \uff20", "guaranteed @"),
        ("\u0660\u0661\u0662 \u0966\u0967 \uff13 \U0001d7d7", "012 01 3 9"),
        ("ign\u043ere \u0430ll prev\u0456ous", "ignore all previous"),  # Cyrillic o, a, i
        ("gu\u0061\u0301ranteed gu\u00e1ranteed", "guaranteed guaranteed"),
        ("\u2018quoted\u2019 \u2013 dash", "'quoted' - dash"),
        ("**bold** *it* __under__ _it_ ~~gone~~ `code` ``x``", "bold it under it gone code x"),
        ("snake_case a~b ~ ~x~ 5*3", "snake_case a~b ~ x 53"),
        ("g&#117;aranteed&nbsp;&#x72;eturns &amp; &bogus; & x", "guaranteed returns & &bogus; & x"),
        ("\ufb01ne \u2460 \u00bd", "fine 1 1/2"),
    ],
)
def test_what_the_view_folds(text: str, expected: str) -> None:
    assert normalize(text).text == expected


def test_ascii_is_never_remapped() -> None:
    """TR39 would map 1 and I to l, 0 to O and m to rn: the view keeps ASCII as it is."""
    printable = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "*_`~&")
    assert normalize(printable).text == printable
    assert all(fold_char(c) == c for c in printable)


def test_letters_that_look_like_digits_stay_letters() -> None:
    # TR39 lists Cyrillic Ze with 3 and Be with 6; a number detector must not see digits.
    assert normalize("\u0417\u0431").text == "\u0417\u0431"


def test_confusable_letters_fold_to_their_latin_prototype() -> None:
    table = homoglyph_table()
    assert len(table) == 26
    for letter, homoglyphs in table.items():
        assert len(homoglyphs) >= 3, letter
        for homoglyph in homoglyphs:
            assert normalize(homoglyph).text.lower() == letter, (letter, hex(ord(homoglyph)))


def test_every_decimal_digit_folds_to_ascii() -> None:
    for zero in DIGIT_ZEROS:
        digits = "".join(chr(ord(zero) + value) for value in range(10))
        assert normalize(digits).text == "0123456789", hex(ord(zero))


@pytest.mark.parametrize("char", [*INVISIBLES, "\u0301", "\ufe0f", "\u3164"])
def test_invisible_characters_vanish(char: str) -> None:
    assert normalize(f"a{char}b").text == "ab"


@pytest.mark.parametrize("char", SPACES)
def test_every_space_is_one_space(char: str) -> None:
    assert normalize(f"a{char}{char} b").text == "a b"


def test_spans_map_each_view_character_back() -> None:
    text = "x \u200b**G\uff55\u0430r** &#97;  b"
    view = normalize(text)
    assert view.text == "x Guar a b"
    spans = [text[start:end] for start, end in zip(view.starts, view.ends, strict=True)]
    assert spans == ["x", " ", "G", "\uff55", "\u0430", "r", " ", "&#97;", " ", "b"]
    # A match's original span includes what was dropped inside it.
    assert view.source(2, 6) == (text.index("G"), text.index("r") + 1)


TEXT_PIECES = st.sampled_from(
    [
        "guaranteed",
        " ",
        "  ",
        "\n",
        "**",
        "*",
        "_",
        "__",
        "~",
        "~~",
        "`",
        "&",
        "&#103;",
        "&#x67",
        "&amp;",
        "&nbsp",
        ";",
        "#",
        "\u200b",
        "\u00a0",
        "\u0301",
        "\u0456",
        "\uff14",
        "\u0664",
        "\ufb01",
        "4111",
        "-",
        "a",
        "1",
    ]
)
texts = st.lists(st.one_of(TEXT_PIECES, st.text(max_size=4)), max_size=20).map("".join)
chunk_sizes = st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(text=texts, sizes=chunk_sizes)
def test_the_view_never_depends_on_the_chunking(text: str, sizes: list[int]) -> None:
    whole = normalize(text)
    view, pending = chunked_view(text, sizes)
    assert view == whole
    # The normaliser only ever waits on a delimiter run or a character reference.
    assert pending <= MAX_REFERENCE + 3


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_spans_are_ordered_and_cover_only_the_text(text: str) -> None:
    view = normalize(text)
    assert len(view.starts) == len(view.ends) == len(view.text)
    for index, (start, end) in enumerate(zip(view.starts, view.ends, strict=True)):
        assert 0 <= start < end <= len(text)
        if index:
            assert start >= view.starts[index - 1]
            # Characters that fold to several share one span; spans never overlap otherwise.
            assert start >= view.ends[index - 1] or (start, end) == (
                view.starts[index - 1],
                view.ends[index - 1],
            )


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_the_view_is_a_fixed_point_of_itself(text: str) -> None:
    """Normalising twice changes nothing, except Markdown and references met again."""
    once = normalize(text).text
    if not any(c in once for c in "*_~`&"):
        assert normalize(once).text == once


def test_folded_text_has_no_marks_or_invisibles() -> None:
    sample = "".join(chr(c) for c in range(0x80, 0x3000))
    for char in normalize(sample).text:
        assert unicodedata.category(char) not in ("Mn", "Me", "Cf", "Cc"), hex(ord(char))
