"""A number dialled with a separate country code (Vicidial's `phone_code`): read in that
country, it gets the key an erasure request or a do-not-call entry written with + gives it."""

from __future__ import annotations

import pytest

from lead_ledger.ledger.phones import code_region, dedupe_key


@pytest.mark.parametrize(
    ("code", "number", "key"),
    [
        ("1", "2025550123", "+12025550123"),
        ("1", "12025550123", "+12025550123"),  # the code written into the number too
        ("44", "07700 900123", "+447700900123"),  # the trunk prefix dropped, as when dialling
        ("001", "2025550123", "+12025550123"),
        ("7", "9161234567", "+79161234567"),
        ("91", "9876543210", "+919876543210"),
    ],
)
def test_a_number_read_in_its_codes_country_is_its_e164_spelling(
    code: str, number: str, key: str
) -> None:
    """The key is the one the number written with +<code> has in any account."""
    assert dedupe_key(number, code_region(code)) == key
    assert dedupe_key(key, "IN") == key


@pytest.mark.parametrize("code", ["", "--BLANK--", "999", "1234", "0"])
def test_what_names_no_country_is_no_region(code: str) -> None:
    """Empty, Vicidial's blank, unassigned, too long: the account's region decides instead."""
    assert code_region(code) is None
