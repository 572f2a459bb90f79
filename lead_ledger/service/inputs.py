"""The rules every dialect applies to untrusted input, in one place (docs/decisions.md).

- A number in a path or a query string is ASCII decimal digits within the column it is compared
  with (bigint or integer). Python's `int()` and `str.isdigit()` also take Unicode digits ('²',
  '٣'), and `int()` refuses more than 4,300 digits with an error of its own.
- Text bound for PostgreSQL holds no NUL (0x00): neither `text` nor `jsonb` can store one. Each
  route decides what a NUL means where it comes in (a name with one names nothing, free text
  loses it, a query value or a jtel field with one is refused naming it), never the database.
- A JSON body is UTF-8 throughout, also where no member is read.
- JSON nested past the decoder's recursion limit (msgspec raises RecursionError for it) is a body
  that cannot be read: each route answers it as it answers malformed JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, TypeVar

import msgspec

T = TypeVar("T")

BIGINT_MAX: Final = 2**63 - 1
INTEGER_MAX: Final = 2**31 - 1
NUL: Final = "\x00"
NUL_REASON: Final = "must not contain NUL (0x00)"
TOO_DEEP: Final = "JSON is nested too deeply"
_DIGITS: Final = len(str(BIGINT_MAX))  # more digits than this is past any column

_decode_any: Final = msgspec.json.Decoder().decode


def decimal(text: str | None, *, minimum: int = 0, maximum: int = BIGINT_MAX) -> int | None:
    """`text` as an int when it is ASCII decimal digits within [minimum, maximum], else None."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > _DIGITS:
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def signed_decimal(text: str) -> int | None:
    """As `decimal`, with an optional leading '-' (a -1 that means "no limit"); the caller
    checks the range, so that it can say why a value is out of it."""
    value = decimal(text.removeprefix("-"))
    if value is None:
        return None
    return -value if text.startswith("-") else value


def decode_json(body: bytes, decode: Callable[[bytes], T] = _decode_any) -> T:
    """`decode(body)`; JSON nested too deeply, and a body that is not UTF-8 throughout, raise
    msgspec.DecodeError like malformed JSON."""
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
