"""Ozonetel's rules for the values of a request, shared by AddCampaignData and the bulk upload:
how the vendor's Jackson reads a JSON scalar into a String field, its priority and expiry
formats, and names that PostgreSQL text (which holds no NUL) can look up or store."""

from __future__ import annotations

import hmac
import re
import zoneinfo
from datetime import UTC, date, datetime, time
from typing import Final, TypeGuard

import asyncpg

from lead_ledger.service.inputs import NUL, held_in_utc

# The vendor's phone rule: 3 to 16 ASCII digits, optionally after one "+".
PHONE: Final = re.compile(r"\+?[0-9]{3,16}")
# Java's Integer.parseInt syntax (an optional sign, ASCII digits): "5" is a priority like 5.
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATE_TIME: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")

# A JSON scalar as the vendor's Jackson would bind it to a String field.
Scalar = str | int | float | bool | None


def text_of(value: Scalar) -> str | None:
    """The value as the vendor's String field holds it; None when missing or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def given(value: Scalar) -> str | None:
    """The text of a name-like field, or None when it is missing, empty or blank."""
    text = text_of(value)
    return text if text is not None and text.strip() else None


def key_matches(row: asyncpg.Record | None, digest: str) -> TypeGuard[asyncpg.Record]:
    """A credential row was found by the key's digest, and it matches (constant-time)."""
    # The lookup is by hash; compare_digest keeps the final check constant-time anyway.
    return row is not None and hmac.compare_digest(str(row["key_sha256"]), digest)


def names_account(username: str, row: asyncpg.Record) -> bool:
    """The username the caller sent names the key's account (`account_name` of `row`)."""
    # Account names are unique case-insensitively (lower(name)), so compare the same way.
    return username.lower() == str(row["account_name"]).lower()


def lookup(text: str | None) -> str | None:
    """A name to look up, or None when it can name nothing (PostgreSQL text cannot hold NUL)."""
    return None if text is None or NUL in text else text


def stored(text: str | None) -> str | None:
    # Event bodies are jsonb, which cannot hold NUL: free text loses it rather than the lead.
    return text.replace(NUL, "") or None if text is not None else None


def parse_priority(value: Scalar) -> int | None:
    """1 when absent; the number when it is an integer 0-99 (JSON or text); else None."""
    if value is None:
        return 1
    if isinstance(value, (bool, float)):
        return None
    text = str(value)
    if not _INTEGER.fullmatch(text):
        return None
    # Leading zeros change no number (Java's parseInt reads "007" as 7), and without them more
    # than two digits is past 99; int() would refuse past 4,300 digits with an error of its own.
    significant = text.lstrip("+-").lstrip("0")
    if len(significant) > 2:
        return None
    number = int(significant or "0") * (-1 if text.startswith("-") else 1)
    return number if 0 <= number <= 99 else None


def parse_expiry(text: str, timezone: str | None) -> datetime | None:
    """The moment `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd` (midnight) names, in UTC; None if
    neither format fits or the date does not exist. The wall time is in `timezone`."""
    match = _DATE_TIME.fullmatch(text) or _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day_, *hms = (int(p) for p in match.groups())
    try:
        day = date(year, month, day_)
        clock = time(hms[0], hms[1], hms[2]) if hms else time()
    except ValueError:
        return None
    zone = zoneinfo.ZoneInfo(timezone) if timezone else UTC
    # 9999-12-31 west of UTC is past the last moment a datetime holds: held there (it expires
    # never, as it says), not a 500.
    return held_in_utc(datetime.combine(day, clock, tzinfo=zone))


def wants_duplicate_check(value: Scalar) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
