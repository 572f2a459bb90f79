"""A number dialled with a separate country code (Vicidial's `phone_code`), as an erasure request
written with + spells it."""

from __future__ import annotations

import pytest

from lead_ledger.ledger.phones import dedupe_key, with_country_code
from lead_ledger.ledger.subject_lookup import dialled_tokens


@pytest.mark.parametrize(
    ("code", "number", "spelled"),
    [
        ("1", "2025550123", "+12025550123"),
        ("1", "12025550123", "+12025550123"),  # the code written into the number too
        ("44", "07700 900123", "+447700900123"),  # the trunk prefix dropped, as when dialling
        ("001", "2025550123", "+12025550123"),
        ("1", "55501", None),  # too short for the country
        ("999", "2025550123", None),  # no country has it
        ("1234", "2025550123", None),  # no country code has four digits
        ("", "2025550123", None),
    ],
)
def test_a_code_and_a_number_give_the_e164_spelling(
    code: str, number: str, spelled: str | None
) -> None:
    """Each spelling is the one `dedupe_key` gives the same number written with +."""
    assert with_country_code(code, number) == spelled
    if spelled is not None:
        assert dedupe_key(spelled, "IN") == spelled


def test_a_row_without_a_code_or_numbers_gives_no_spelling() -> None:
    """No code, or only blank and non-text numbers: nothing to look up by."""
    assert dialled_tokens(None, ["2025550123"]) == set()
    assert dialled_tokens("1", ["", None, True]) == set()
    assert dialled_tokens(1, ["2025550123", "4155550134"]) == {"+12025550123", "+14155550134"}
