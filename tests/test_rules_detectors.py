"""Detectors on generated variants: what they must catch, and ordinary text they must leave."""

from __future__ import annotations

import string
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from pydantic import ValidationError
from stdnum import iban, luhn

from parley.catalog import Catalog, load_catalog
from parley.rules import RuleSet
from parley.rules.detectors.email import SPELLED_TLDS
from parley.rules.patterns import OutputRedactRule, RedactRule
from support.variants import (
    DIGIT_ZEROS,
    card_numbers,
    digit_scripts,
    grouped,
    ibans,
    in_script,
    recased,
    separated,
)
from support.whole_reply import whole_reply

ROOT = Path(__file__).resolve().parents[1]
CATALOG: Catalog = load_catalog(ROOT)
FINANCE: RuleSet = CATALOG.rule_sets["financial_advisor"]
LABELS = {
    "card_number": "[redacted card number]",
    "iban": "[redacted IBAN]",
    "email_address": "[redacted e-mail address]",
    "phone_number": "[redacted phone number]",
    "us_ssn": "[redacted SSN]",
    "uk_nino": "[redacted National Insurance number]",
}
SLOW = settings(max_examples=150, deadline=None)


def assert_redacted(
    written: str, rule: str, *, before: str = "it is ", after: str = ", thanks"
) -> None:
    """``written`` inside a message comes back as exactly the rule's label."""
    verdict = FINANCE.check_input(f"{before}{written}{after}")
    assert verdict.text == f"{before}{LABELS[rule]}{after}", written
    assert [e.rule for e in verdict.events] == [rule], written


def assert_untouched(text: str) -> None:
    verdict = FINANCE.check_input(text)
    assert (verdict.text, verdict.events) == (text, ()), text


# -- card numbers -------------------------------------------------------------------------------


@SLOW
@given(data=st.data(), number=card_numbers())
def test_card_numbers_in_any_layout_and_script_are_redacted(
    data: st.DataObject, number: str
) -> None:
    written = data.draw(digit_scripts(data.draw(separated(number))))
    assert_redacted(written, "card_number")


@SLOW
@given(number=card_numbers(), noise=st.sampled_from(["12 ", "7 ", "2024 ", "+1 ", "4111 "]))
def test_digits_before_a_card_do_not_hide_it(number: str, noise: str) -> None:
    """A failed candidate that starts early does not swallow the card after it.

    (Where the noise and the card's first digits happen to form a valid card
    themselves, that is what is redacted; either way what is left is no card.)
    """
    verdict = FINANCE.check_input(f"ref {noise}{grouped(number)}, thanks")
    assert "card_number" in {e.rule for e in verdict.events}
    assert FINANCE.check_input(verdict.text).events == ()


@given(number=card_numbers())
def test_card_numbers_are_redacted_in_replies_too(number: str) -> None:
    reply, events = whole_reply(FINANCE, f"Use {grouped(number, separator='-')} today.")
    assert reply.startswith("Use [redacted card number] today.")
    assert events[0].rule == "card_number"


@given(number=card_numbers(), wrong=st.integers(min_value=1, max_value=9))
def test_numbers_failing_luhn_are_not_card_numbers(number: str, wrong: int) -> None:
    broken = number[:-1] + str((int(number[-1]) + wrong) % 10)
    groups = grouped(broken).split()
    # Nor may a run of its groups pass by chance: that would be a card inside it.
    runs = ["".join(groups[i:j]) for i in range(len(groups)) for j in range(i + 1, len(groups) + 1)]
    assume(not any(13 <= len(run) <= 19 and luhn.is_valid(run) for run in runs))
    verdict = FINANCE.check_input(f"order {grouped(broken)} shipped")
    assert "card_number" not in {e.rule for e in verdict.events}


# -- IBANs --------------------------------------------------------------------------------------


@SLOW
@given(data=st.data(), account=ibans())
def test_ibans_in_any_case_with_any_separators_are_redacted(
    data: st.DataObject, account: str
) -> None:
    # Separators anywhere after the country code and check digits, which come together.
    written = data.draw(recased(account[:4])) + data.draw(
        separated(data.draw(recased(account[4:])))
    )
    assert_redacted(written, "iban")


@given(account=ibans(), wrong=st.integers(min_value=1, max_value=96))
def test_ibans_with_wrong_check_digits_are_left(account: str, wrong: int) -> None:
    digits = (int(account[2:4]) + wrong) % 97
    broken = f"{account[:2]}{digits:02d}{account[4:]}"
    assert not iban.is_valid(broken)
    verdict = FINANCE.check_input(f"pay {grouped(broken)} now")
    assert "iban" not in {e.rule for e in verdict.events}


def test_an_iban_running_into_a_word_is_not_one() -> None:
    assert_untouched("code GB82WEST12345698765432xyz here")


# -- e-mail addresses ---------------------------------------------------------------------------

locals_ = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10)
unicode_locals = st.sampled_from(
    ["jos\u00e9", "m\u00fcller", "\u7528\u6237", "\u0438\u0432\u0430\u043d"]
)
domains = st.sampled_from(["example", "mail.example", "ex-ample", "ex\u00e4mple", "\u4f8b\u5b50"])
tlds = st.sampled_from(["com", "org", "co.uk", "de", "io"])
SIGNS = {"@": ["@", "\uff20", "\ufe6b", " @ ", " [at] ", "(at)", " (at) ", "{at}"]}
DOTS = [".", " . ", " [dot] ", "(dot)", " (dot) "]


@SLOW
@given(
    local=st.one_of(locals_, unicode_locals),
    domain=domains,
    tld=tlds,
    at=st.sampled_from(SIGNS["@"]),
    dot=st.sampled_from(DOTS),
)
def test_email_addresses_written_any_way_are_redacted(
    local: str, domain: str, tld: str, at: str, dot: str
) -> None:
    address = f"{local}{at}{domain}.{tld}".replace(".", dot)
    assert_redacted(address, "email_address", before="write to ", after=" please")


@given(local=locals_, domain=st.sampled_from(["example", "mail.example"]), tld=tlds)
def test_spelled_out_addresses_are_redacted(local: str, domain: str, tld: str) -> None:
    address = f"{local} at {domain}.{tld}".replace(".", " dot ")
    assert_redacted(address, "email_address", before="write to ", after=" please")


@pytest.mark.parametrize(
    "text",
    [
        "look at this dot product",
        "meet me at home dot by dot",
        "we arrive at 5 dot 30",
        "a@b.c is not an address",
        "name@localhost has no domain",
        "name@-x.com starts with a hyphen",
        "version 1.2.3 at noon",
    ],
)
def test_things_that_are_not_addresses_are_left(text: str) -> None:
    assert "email_address" not in {e.rule for e in FINANCE.check_input(text).events}


def test_spelled_tlds_are_real_tlds() -> None:
    assert {"com", "org", "uk", "de"} <= SPELLED_TLDS
    assert not {"by", "it", "is", "me", "to", "at", "in", "product"} & SPELLED_TLDS


# -- phone numbers ------------------------------------------------------------------------------

TYPES = [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE]
PHONE_SEPARATORS = ["", " ", "-", ".", "  ", "\u00a0", "\u200b", " -", "\u200b-"]


def example_numbers(regions: list[str]) -> list[phonenumbers.PhoneNumber]:
    found = [phonenumbers.example_number_for_type(r, t) for r in regions for t in TYPES]
    return [n for n in found if n is not None]


NATIONAL = example_numbers(["US", "GB", "DE"])
ABROAD = example_numbers(["FR", "JP", "IN", "BR", "AU", "ES", "IT", "NL"])


@SLOW
@given(number=st.sampled_from(NATIONAL), data=st.data())
def test_national_numbers_of_the_rule_regions_are_redacted(
    number: phonenumbers.PhoneNumber, data: st.DataObject
) -> None:
    national = phonenumbers.national_significant_number(number)
    digits = national if number.country_code == 1 else f"0{national}"
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    count = len(groups) - 1
    gaps = data.draw(st.lists(st.sampled_from(PHONE_SEPARATORS), min_size=count, max_size=count))
    written = groups[0] + "".join(g + d for g, d in zip(gaps, groups[1:], strict=True))
    assert_redacted(written, "phone_number", before="call ", after=" today")


@pytest.mark.parametrize("number", NATIONAL)
def test_national_numbers_as_people_format_them_are_redacted(
    number: phonenumbers.PhoneNumber,
) -> None:
    written = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    assert_redacted(written, "phone_number", before="call ", after=" today")


@SLOW
@given(
    number=st.sampled_from(NATIONAL + ABROAD),
    style=st.sampled_from([PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL]),
    zero=st.sampled_from(["0", "\uff10", "\u0660"]),
)
def test_numbers_with_a_country_code_are_redacted_for_any_country(
    number: phonenumbers.PhoneNumber, style: int, zero: str
) -> None:
    written = in_script(phonenumbers.format_number(number, style), zero)
    assert_redacted(written, "phone_number", before="call ", after=" today")


@pytest.mark.parametrize(
    "text",
    [
        "call (555) 010-9999 now",
        "on 2024-11-21 at 10:30",
        "ISBN 978-0-306-40615-7",
        "dial 1234567890",
    ],
)
def test_invalid_numbers_are_not_phone_numbers(text: str) -> None:
    assert "phone_number" not in {e.rule for e in FINANCE.check_input(text).events}


def test_regions_are_checked_when_the_rule_loads() -> None:
    with pytest.raises(ValidationError, match="unknown region 'XX'"):
        RedactRule.model_validate(
            {"id": "p", "detector": "phone_number", "regions": ["XX"], "replacement": "#"}
        )
    with pytest.raises(ValidationError, match="regions only apply"):
        RedactRule.model_validate(
            {"id": "p", "detector": "card_number", "regions": ["US"], "replacement": "#"}
        )


# -- national ids -------------------------------------------------------------------------------

ssn_parts = st.tuples(
    st.integers(min_value=1, max_value=899).filter(lambda a: a != 666),
    st.integers(min_value=1, max_value=99),
    st.integers(min_value=1, max_value=9999),
).filter(lambda p: (p[0], p[1], p[2]) not in {(78, 5, 1120), (219, 9, 9999)})
ID_SEPARATORS = ["-", " ", ".", "/", " -", "\u00a0", "  ", "\u2009\u2009"]


@SLOW
@given(
    parts=ssn_parts,
    separator=st.sampled_from(ID_SEPARATORS),
    invisible=st.sampled_from(["", "\u200b"]),
)
def test_ssns_with_any_separator_are_redacted(
    parts: tuple[int, int, int], separator: str, invisible: str
) -> None:
    area, group, serial = parts
    written = f"{area:03d}{separator}{group:02d}{invisible}{separator}{serial:04d}"
    assert_redacted(written, "us_ssn")


@given(parts=ssn_parts, name=st.sampled_from(["SSN", "ssn:", "Social Security number", "SS#"]))
def test_an_ssn_without_separators_is_redacted_when_named(
    parts: tuple[int, int, int], name: str
) -> None:
    area, group, serial = parts
    assert_redacted(f"{area:03d}{group:02d}{serial:04d}", "us_ssn", before=f"my {name} is ")


@pytest.mark.parametrize(
    "text",
    [
        "ssn 000-12-3456 is never issued",
        "ssn 666-12-3456 is never issued",
        "ssn 912-34-5678 is never issued",
        "ssn 078-05-1120 was printed on wallets",
        "order 123456789 shipped",  # nine digits, but nothing says SSN
        "paid $100.01 - 1900 units",  # two different separators: not one number
    ],
)
def test_invalid_or_unnamed_ssns_are_left(text: str) -> None:
    assert "us_ssn" not in {e.rule for e in FINANCE.check_input(text).events}


nino_prefixes = (
    st.tuples(st.sampled_from("ABCEGHJKLMNOPRSTWXYZ"), st.sampled_from("ABCEGHJKLMNPRSTWXYZ"))
    .map("".join)
    .filter(lambda p: p not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
)


@SLOW
@given(
    prefix=nino_prefixes,
    digits=st.text(alphabet=string.digits, min_size=6, max_size=6),
    suffix=st.sampled_from("ABCD"),
    separator=st.sampled_from(["", " ", "-", "."]),
    data=st.data(),
)
def test_national_insurance_numbers_are_redacted(
    prefix: str, digits: str, suffix: str, separator: str, data: st.DataObject
) -> None:
    written = separator.join([prefix, digits[:2], digits[2:4], digits[4:], suffix])
    assert_redacted(data.draw(recased(written)), "uk_nino", before="NI number ")


@pytest.mark.parametrize("text", ["NI QQ 12 34 56 C", "NI GB 12 34 56 A", "NI AB 12 34 56 E"])
def test_unallocated_national_insurance_numbers_are_left(text: str) -> None:
    assert_untouched(text)


# -- ordinary text is left alone ----------------------------------------------------------------

years = st.integers(min_value=1900, max_value=2099)
months = st.integers(min_value=1, max_value=12)
days = st.integers(min_value=1, max_value=28)


@st.composite
def ordinary(draw: st.DrawFn) -> str:
    """Dates, times, prices, versions, addresses and counts of every usual shape."""
    y, m, d = draw(years), draw(months), draw(days)
    amount = draw(st.integers(min_value=0, max_value=9_999_999))
    cents = draw(st.integers(min_value=0, max_value=99))
    version = ".".join(str(draw(st.integers(min_value=0, max_value=99))) for _ in range(3))
    choices = [
        f"{y}-{m:02d}-{d:02d}",
        f"{d:02d}/{m:02d}/{y}",
        f"{m:02d}-{d:02d}-{y}",
        f"{d}.{m}.{y}",
        f"{m % 12 + 1}:{d + 30} pm",
        f"${amount:,}.{cents:02d}",
        f"EUR {amount:,}".replace(",", " "),
        f"{amount:,} units",
        f"v{version}",
        f"version {version}",
        f"10.0.{m}.{d}",
        f"#{amount}",
        f"{y} to {y + d}",
        f"{amount}%",
    ]
    return draw(st.sampled_from(choices))


@settings(max_examples=300, deadline=None)
@given(first=ordinary(), second=ordinary(), glue=st.sampled_from([" and ", ", ", " or ", " - "]))
def test_ordinary_numbers_are_never_redacted(first: str, second: str, glue: str) -> None:
    """Two of them side by side too, as in a range. (Glued by a single space, two
    numbers are one grouped number to a reader as well: about 0.2% of such pairs
    form a valid phone or card number, and are redacted.)"""
    assert_untouched(f"On {first}{glue}{second} we shipped it.")


@pytest.mark.parametrize("zero", DIGIT_ZEROS)
def test_ordinary_numbers_in_other_scripts_are_left(zero: str) -> None:
    assert_untouched(in_script("On 2024-11-21 at 10:30 we sold 1,249 units for $99.95.", zero))


# -- detectors in rule files --------------------------------------------------------------------


def test_a_detector_too_wide_for_output_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="detector email_address cannot be used here"):
        OutputRedactRule.model_validate(
            {"id": "e", "detector": "email_address", "replacement": "#"}
        )


def test_detectors_take_no_checksum() -> None:
    with pytest.raises(ValidationError, match="checks its own format"):
        RedactRule.model_validate(
            {"id": "c", "detector": "card_number", "check": "luhn", "replacement": "#"}
        )
