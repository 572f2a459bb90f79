"""The shared input rules (service/inputs.py): ASCII digits in range, NUL found by name, JSON
nested too deeply read as malformed JSON, times UTC can hold."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import msgspec
import pytest

from lead_ledger.service.inputs import (
    BIGINT_MAX,
    FIRST_MOMENT,
    INTEGER_MAX,
    LAST_MOMENT,
    TOO_DEEP,
    decimal,
    decode_json,
    end_of_day,
    held_in_utc,
    in_utc,
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


def test_decode_json_skips_a_utf8_byte_order_mark() -> None:
    """A body a .NET or PowerShell client wrote with a BOM reads as its JSON (Jackson and
    Newtonsoft, the vendors' parsers, skip it; RFC 8259 lets a parser ignore it); a BOM
    anywhere else is still malformed."""
    assert decode_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    with pytest.raises(msgspec.DecodeError):
        decode_json(b'{"a": 1}\xef\xbb\xbf')


def test_nul_name_names_the_first_pair_with_a_nul() -> None:
    """A NUL in a name or a value names the pair; a NUL in the name is shown escaped."""
    assert nul_name([("a", "x"), ("b", "y\x00")]) == "b"
    assert nul_name([("a\x00", "x")]) == "a\\u0000"
    assert nul_name([("a", "x")]) is None


def test_times_utc_cannot_hold_or_asyncpg_would_write_as_infinity() -> None:
    """In range: years 1-9999 in UTC, less the second at either end (asyncpg writes
    9999-12-31T23:59:59.999999Z and 0001-01-01T00:00:00Z as infinities); a vendor's date there
    is held at the nearest whole second; a naive time is UTC."""
    west = timezone(timedelta(hours=-5))
    assert in_utc(datetime(9999, 12, 31, 18, 59, 59, 999999, tzinfo=west)) is None
    assert in_utc(datetime(9999, 12, 31, 23, 0, tzinfo=west)) is None  # past the end
    assert in_utc(datetime(1, 1, 1, tzinfo=UTC)) is None
    assert in_utc(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)  # noqa: DTZ001
    assert in_utc(LAST_MOMENT) == LAST_MOMENT
    assert held_in_utc(datetime(9999, 12, 31, 23, 0, tzinfo=west)) == LAST_MOMENT
    assert held_in_utc(datetime(1, 1, 1, tzinfo=UTC)) == FIRST_MOMENT
    assert end_of_day(date.max) == LAST_MOMENT
    assert end_of_day(date(2026, 1, 31)) == datetime(2026, 2, 1, tzinfo=UTC)
