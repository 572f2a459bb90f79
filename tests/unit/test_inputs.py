"""The shared input rules (service/inputs.py): ASCII digits in range, NUL found by name, JSON
nested too deeply read as malformed JSON."""

from __future__ import annotations

import msgspec
import pytest

from lead_ledger.service.inputs import (
    BIGINT_MAX,
    INTEGER_MAX,
    TOO_DEEP,
    decimal,
    decode_json,
    nul_name,
    signed_decimal,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (str(BIGINT_MAX), BIGINT_MAX),
        (str(BIGINT_MAX + 1), None),
        ("9" * 5000, None),  # int() itself refuses past 4,300 digits
        ("²", None),
        ("٣", None),
        ("", None),
        (" 1", None),
        ("+1", None),
        ("-1", None),
        (None, None),
    ],
)
def test_decimal_is_ascii_digits_within_bigint(text: str | None, expected: int | None) -> None:
    """Only ASCII digits up to bigint are a number; Unicode digits and signs are not."""
    assert decimal(text) == expected


def test_decimal_bounds() -> None:
    """The minimum and maximum are inclusive."""
    assert decimal("0", minimum=1) is None
    assert decimal("1", minimum=1) == 1
    assert decimal(str(INTEGER_MAX), maximum=INTEGER_MAX) == INTEGER_MAX
    assert decimal(str(INTEGER_MAX + 1), maximum=INTEGER_MAX) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-1", -1), ("7", 7), ("-", None), ("--1", None), ("-٣", None), ("1-", None)],
)
def test_signed_decimal(text: str, expected: int | None) -> None:
    """A leading '-' is the only sign taken."""
    assert signed_decimal(text) == expected


def test_decode_json_reads_too_deep_as_malformed() -> None:
    """RecursionError from msgspec becomes the DecodeError routes answer as malformed JSON."""
    with pytest.raises(msgspec.DecodeError, match=TOO_DEEP):
        decode_json(b"[" * 100_000 + b"]" * 100_000)
    assert decode_json(b'{"a": [1]}') == {"a": [1]}


def test_nul_name_names_the_first_pair_with_a_nul() -> None:
    """A NUL in a name or a value names the pair; a NUL in the name is shown escaped."""
    assert nul_name([("a", "x"), ("b", "y\x00")]) == "b"
    assert nul_name([("a\x00", "x")]) == "a\\u0000"
    assert nul_name([("a", "x")]) is None
