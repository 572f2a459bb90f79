"""Phone numbers: the dedupe key that makes `+919876543210` and `098765 43210` one contact."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import phonenumbers

_NON_DIGITS: Final = re.compile(r"\D")


def digits_only(phone: str) -> str:
    return _NON_DIGITS.sub("", phone)


def dedupe_key(phone: str, default_region: str | None) -> str:
    """E.164 when the number parses as possible for the account's region, else its digits.

    A spelling that is no valid number as written is read again before that (`_readings`): its
    digits alone (a parser takes `98911,11111`'s comma as the end of the number and `(mobile)`
    as letters on a keypad), then with its country code written without `+`. The first valid
    reading wins, so that every spelling of one number meets its do-not-call entry, its
    duplicates and its erasure.

    Without a default region only numbers written with a leading + can be placed; the rest fall
    back to digits, so `9876543210` and `98765-43210` still match each other.
    """
    text = phone.strip()
    if not text:
        return ""
    region = default_region.upper() if default_region else None
    if not (region or text.startswith("+")):
        return digits_only(text)
    written = _parsed(text, region)
    if written is not None and phonenumbers.is_valid_number(written):
        return _e164(written)
    for reading in _readings(text, region):
        parsed = _parsed(reading, region)
        if parsed is not None and phonenumbers.is_valid_number(parsed):
            return _e164(parsed)
    if written is None and region and not text.startswith("+"):
        # Numbers stored with their country code but without "+" (919876543210).
        written = _parsed("+" + digits_only(text), None)
    if written is not None and phonenumbers.is_possible_number(written):
        return _e164(written)
    return digits_only(text)


def _readings(text: str, region: str | None) -> Iterator[str]:
    """Other readings of a spelling that is no valid number as written, in the order tried."""
    digits = digits_only(text)
    if text.startswith("+"):
        yield "+" + digits
        return
    yield digits
    if region:
        yield "+" + digits  # its country code without "+": 919876543210
        yield "+" + digits.lstrip("0")  # a trunk 0 before the code: 0919876543210


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _e164(parsed: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def dedupe_keys(phones: list[str], default_region: str | None) -> list[str]:
    """Keys of all numbers, first (primary) first, without repeats or blanks."""
    seen: dict[str, None] = {}
    for phone in phones:
        key = dedupe_key(phone, default_region)
        if key:
            seen.setdefault(key, None)
    return list(seen)


def with_country_code(code: str, number: str) -> str | None:
    """The number in E.164 as dialled with a separate country code (Vicidial's `phone_code`):
    `1` and `2025550123` give `+12025550123`. None unless it is a possible number of that
    country, the rule `dedupe_key` places a number written with + by, so that such a request
    spells it the same way (a national trunk prefix such as the UK's `0` is dropped, as when
    dialling)."""
    digits = digits_only(code)
    if not digits or len(digits) > 3:  # country codes have one to three digits
        return None
    region = phonenumbers.region_code_for_country_code(int(digits))
    if region == phonenumbers.UNKNOWN_REGION:
        return None
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code != int(digits) or not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
