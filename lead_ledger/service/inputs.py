"""The rules every dialect applies to untrusted input, in one place (docs/decisions.md).

- A number in a path or a query string is ASCII decimal digits within the column it is compared
  with (bigint or integer). Python's `int()` and `str.isdigit()` also take Unicode digits ('²',
  '٣'), and `int()` refuses more than 4,300 digits with an error of its own.
- Text bound for PostgreSQL holds no NUL (0x00): neither `text` nor `jsonb` can store one. Each
  route decides what a NUL means where it comes in (a name with one names nothing, free text
  loses it, a query value or a jtel field with one is refused naming it), never the database.
- A JSON body is UTF-8 throughout, also where no member is read. Header text that is not
  (a file name in bytes of another encoding) reads with U+FFFD where its bytes were.
- A time is one PostgreSQL and Python can both hold in UTC, the years 1 to 9999: an offset that
  pushes it past either end (`9999-12-31T23:59:59-05:00`) is refused naming it, or, where a
  vendor's date means "through that day" or "until then" (an expiry), held at the last (or
  first) moment there is.
- JSON nested past the decoder's recursion limit (msgspec raises RecursionError for it) is a body
  that cannot be read: each route answers it as it answers malformed JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, TypeVar

import msgspec

T = TypeVar("T")

BIGINT_MAX: Final = 2**63 - 1
INTEGER_MAX: Final = 2**31 - 1
NUL: Final = "\x00"
NUL_REASON: Final = "must not contain NUL (0x00)"
TOO_DEEP: Final = "JSON is nested too deeply"
_DIGITS: Final = len(str(BIGINT_MAX))  # more digits than this is past any column

# The last and first whole seconds a datetime holds in UTC. Not datetime.max and .min: asyncpg
# writes those as PostgreSQL's 'infinity' and '-infinity' and reads them back without a zone,
# where the same time written as JSON and read by SQL (a rebuild) is a finite one.
LAST_MOMENT: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
FIRST_MOMENT: Final = datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)

_decode_any: Final = msgspec.json.Decoder().decode


def decimal(text: str | None, *, minimum: int = 0, maximum: int = BIGINT_MAX) -> int | None:
    """`text` as an int when it is ASCII decimal digits within [minimum, maximum], else None."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > _DIGITS:
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def utf8_text(text: str) -> str:
    """`text` as UTF-8 can hold it. A header's bytes that are not UTF-8 reach Python as lone
    surrogates (aiohttp decodes with surrogateescape), which no encoder of an event, a log line
    or a response takes: each such byte reads as U+FFFD, as an invalid byte of a body does."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def signed_decimal(text: str) -> int | None:
    """As `decimal`, with an optional leading '-' (a -1 that means "no limit"); the caller
    checks the range, so that it can say why a value is out of it."""
    value = decimal(text.removeprefix("-"))
    if value is None:
        return None
    return -value if text.startswith("-") else value


UTF8_BOM: Final = b"\xef\xbb\xbf"


def decode_json(body: bytes, decode: Callable[[bytes], T] = _decode_any) -> T:
    """`decode(body)`; JSON nested too deeply, and a body that is not UTF-8 throughout, raise
    msgspec.DecodeError like malformed JSON. A UTF-8 byte order mark before the JSON is skipped:
    .NET's and PowerShell's writers put one there, and the vendors' own parsers (Jackson,
    Newtonsoft) skip it, as RFC 8259 lets a parser do."""
    body = body.removeprefix(UTF8_BOM)
    if not body.isascii():
        # msgspec checks the strings it reads and skips the rest (an unknown member) unread,
        # so a body with bytes that are no UTF-8 there would be taken.
        try:
            body.decode()
        except UnicodeDecodeError as error:
            reason = f"JSON is malformed: invalid utf-8 (byte {error.start})"
            raise msgspec.DecodeError(reason) from None
    try:
        return decode(body)
    except RecursionError:
        raise msgspec.DecodeError(TOO_DEEP) from None


def nul_name(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The name of the first (name, value) pair that holds NUL in either, else None."""
    for name, value in pairs:
        if NUL in name or NUL in value:
            return shown(name)
    return None


def shown(name: str) -> str:
    """A name as it can be shown back (and stored in a log): NUL written as an escape."""
    return name.replace(NUL, "\\u0000")


# Why a time `in_utc` cannot hold is refused, after the name of what held it.
OUT_OF_RANGE: Final = "is out of range: in UTC it must fall in the years 1 to 9999"


def in_utc(moment: datetime) -> datetime | None:
    """`moment` in UTC (without an offset: taken as UTC); None when that falls outside
    FIRST_MOMENT..LAST_MOMENT: past the years 1 to 9999, which no datetime holds, or in the
    second at either end, whose outermost instants asyncpg would write as an infinity."""
    try:
        converted = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        return None
    return converted if FIRST_MOMENT <= converted <= LAST_MOMENT else None


def held_in_utc(moment: datetime) -> datetime:
    """`moment` in UTC, or the nearest second there is: the last one of 9999 for a moment past
    it, the first one of year 1 for a moment before it."""
    converted = in_utc(moment)
    if converted is not None:
        return converted
    return LAST_MOMENT if moment.year > 1 else FIRST_MOMENT


def end_of_day(last: date) -> datetime:
    """When something that lasts through `last` (a UTC day, inclusive) ends: the next midnight,
    or the last second of 9999-12-31."""
    if last == date.max:
        return LAST_MOMENT
    return datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)


def time_out_of_range(value: object, path: str = "") -> str | None:
    """The path (`as_of`, `$[1].expires_at`) of the first time in `value` (a Struct, a list of
    them, a time) that `in_utc` cannot hold, else None."""
    if isinstance(value, datetime):
        return path if in_utc(value) is None else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = time_out_of_range(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(value):
            name = f"{path}.{field.encode_name}" if path else field.encode_name
            found = time_out_of_range(getattr(value, field.name), name)
            if found is not None:
                return found
    return None
