"""The variant generators (tests/support/variants.py) generate what they claim."""

from __future__ import annotations

import string

from hypothesis import given
from stdnum import iban, luhn

from support.variants import card_numbers, homoglyph_table, ibans, in_script, separated


def test_every_letter_has_homoglyphs_from_the_confusables_data() -> None:
    table = homoglyph_table()
    assert sorted(table) == list(string.ascii_lowercase)
    # The classics are there: Cyrillic a, e, o, i and Greek omicron.
    assert {"\u0430", "\u0435", "\u043e", "\u0456", "\u03bf"} <= {
        c for v in table.values() for c in v
    }


@given(number=card_numbers())
def test_generated_card_numbers_pass_luhn(number: str) -> None:
    assert luhn.is_valid(number) and 13 <= len(number) <= 19 and number[0] in "234568"


@given(account=ibans())
def test_generated_ibans_are_valid(account: str) -> None:
    assert iban.is_valid(account)


@given(text=separated("41111111"))
def test_separated_keeps_the_digits_in_order(text: str) -> None:
    assert "".join(c for c in text if c.isdigit()) == "41111111"


def test_in_script_writes_other_digits() -> None:
    assert in_script("4111", "\u0660") == "\u0664\u0661\u0661\u0661"
