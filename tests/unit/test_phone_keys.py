"""The dedupe key of a number as people and CRMs write it: every spelling of one number is one
key, so that a do-not-call entry, a duplicate check and an erasure all meet it."""

from __future__ import annotations

import pytest

from lead_ledger.ledger.phones import dedupe_key
from lead_ledger.ledger.subject_lookup import phone_tokens


@pytest.mark.parametrize(
    "written",
    [
        "9891111111",
        "+91 98911 11111",
        "098911-11111",
        "00919891111111",
        "919891111111",
        "98911,11111",  # Vicidial keeps commas (a dialling pause)
        "9891111111 (mobile)",  # a note a parser reads as letters on a keypad
        "98911_11111",
        "0919891111111",  # the old trunk-and-code spelling
        "+91-(0)98911-11111",
        "9891111111 ext. 12",
    ],
)
def test_every_spelling_of_an_indian_mobile_is_one_key(written: str) -> None:
    """Separators, notes and prefixes around a valid number do not change its key."""
    assert dedupe_key(written, "IN") == "+919891111111"


@pytest.mark.parametrize(
    ("written", "region", "key"),
    [
        ("+1 202-555-0123", "IN", "+12025550123"),
        ("98911 11111 / 98122 22222", "IN", "98911111119812222222"),  # two numbers: digits
        ("12345", "IN", "12345"),  # no number of the region or any other: digits
        ("98911-11111", None, "9891111111"),  # no region to place it: digits
        ("+44 7700 900123", "IN", "+447700900123"),  # possible, not assigned: still E.164
    ],
)
def test_numbers_no_reading_makes_valid_keep_their_old_keys(
    written: str, region: str | None, key: str
) -> None:
    """What cannot be read as a valid number is keyed as before: E.164 when possible, else
    digits."""
    assert dedupe_key(written, region) == key


def test_a_number_with_its_country_code_needs_no_region() -> None:
    """Written with +, a number is placed without a region, notes and all."""
    assert dedupe_key("+91 98911 11111 (mobile)", None) == "+919891111111"


def test_a_cell_with_commas_is_looked_up_by_each_part_and_as_one_number() -> None:
    """Two numbers, or one with Vicidial's dialling pause: every reading is a lookup token."""
    assert phone_tokens("9876543210, 9812345678", "IN")[:2] == ["+919876543210", "+919812345678"]
    assert "+919891111111" in phone_tokens("98911,11111", "IN")
