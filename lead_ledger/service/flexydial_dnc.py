"""Flexydial's DNC API (VENDOR-APIS A and F): `upload-dnc` and `remove-dnc` onto the account's
do-not-call registry (service/dnc.py), all or nothing, in the vendor's words (docs/flexydial.md).

An item names a number and either `global_dnc` "true" (an account-wide entry) or one or more
campaigns separated by commas (an entry per campaign); `status` Active (default) or Inactive;
`dnc_end_date` (YYYY-MM-DD) is the last day the entry blocks.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.dnc_events import DncStatus
from lead_ledger.service import dnc
from lead_ledger.service.inputs import decode_json, end_of_day
from lead_ledger.service.writer import Context

PROCESSED: Final = "Data processed successfully"
REMOVED: Final = "DNC numbers removed successfully"
INVALID_STRUCTURE: Final = "Invalid request structure"
INVALID_NUMBER: Final = "Enter Valid Number"
NO_SCOPE: Final = "Atleast provide one campaign or global_dnc as TRUE"
BAD_FLAG: Final = "Global_dnc values should be TRUE or FALSE"
UNKNOWN_CAMPAIGN: Final = "Campaign with this name is not exists"
BAD_STATUS: Final = "Status values should be Active or Inactive"
BAD_END_DATE: Final = "Enter Valid dnc_end_date (YYYY-MM-DD)"

_Items = list[dict[str, object]]


def exists(numeric: str) -> str:
    return f"DNC number {numeric} already exists."


def does_not_exist(numeric: str) -> str:
    return f"DNC number {numeric} does not exist."


class RefusedError(Exception):
    """The batch is refused: nothing was stored. `detail` is the vendor's text."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _items(body: bytes) -> _Items:
    try:
        data: object = decode_json(body)
    except msgspec.DecodeError:
        raise RefusedError(INVALID_STRUCTURE) from None
    if not isinstance(data, list) or not data or not all(isinstance(i, dict) for i in data):
        raise RefusedError(INVALID_STRUCTURE)
    if len(data) > dnc.MAX_ENTRIES:
        raise RefusedError(INVALID_STRUCTURE)
    return data


def _text(item: dict[str, object], name: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "\0"  # not a value any check accepts
    return str(value).strip()


def _names(item: dict[str, object]) -> list[str]:
    """The campaigns an item names, comma-separated."""
    return [name.strip() for name in _text(item, "campaign").split(",") if name.strip()]


def _flag(item: dict[str, object]) -> bool:
    value = item.get("global_dnc")
    if isinstance(value, bool):
        # A JSON boolean, as Flexydial's Python reads any value (str(True).lower() is "true").
        return value
    text = _text(item, "global_dnc").lower()
    if text in ("", "false"):
        return False
    if text == "true":
        return True
    raise RefusedError(BAD_FLAG)


def _status(item: dict[str, object]) -> DncStatus:
    text = _text(item, "status").lower()
    if text in ("", "active"):
        return "Active"
    if text == "inactive":
        return "Inactive"
    raise RefusedError(BAD_STATUS)


def _expiry(item: dict[str, object]) -> datetime | None:
    """The end date blocks through its last day (UTC): the entry expires at the next midnight."""
    text = _text(item, "dnc_end_date")
    if not text:
        return None
    try:
        last = date.fromisoformat(text)
    except ValueError:
        raise RefusedError(BAD_END_DATE) from None
    if len(text) != len("YYYY-MM-DD"):
        raise RefusedError(BAD_END_DATE)
    return end_of_day(last)


async def upload_dnc(conn: Connection, ctx: Context, account_id: int, body: bytes) -> str:
    """Add every item's entries, or none; RefusedError with the first item's fault otherwise."""
    items = _items(body)
    campaigns = await dnc.campaigns_by_name(conn, account_id)
    entries: list[dnc.NewDncEntry] = []
    numerics: list[str] = []  # each entry's number as its item gave it
    for item in items:
        numeric = _text(item, "numeric")
        if not dnc.valid_number(numeric):
            raise RefusedError(INVALID_NUMBER)
        everywhere = _flag(item)
        names = _names(item)
        if not everywhere and not names:
            raise RefusedError(NO_SCOPE)
        if not everywhere and any(name not in campaigns for name in names):
            raise RefusedError(UNKNOWN_CAMPAIGN)
        status, expires_at = _status(item), _expiry(item)
        for campaign in [None] if everywhere else names:
            entries.append(
                dnc.NewDncEntry(
                    phone=numeric, campaign=campaign, status=status, expires_at=expires_at
                )
            )
            numerics.append(numeric)
    try:
        await dnc.add_entries(conn, ctx, account_id, entries)
    except dnc.DncError as error:
        if error.fault == "exists" and error.index is not None:
            raise RefusedError(exists(numerics[error.index])) from error
        raise RefusedError(INVALID_STRUCTURE) from error
    return PROCESSED


async def remove_dnc(conn: Connection, ctx: Context, account_id: int, body: bytes) -> str:
    """Remove every entry of each item's number (of its campaigns, when it names any), or none:
    RefusedError for the first item at fault, in order (a number with no entry is named)."""
    items = _items(body)
    campaigns = await dnc.campaigns_by_name(conn, account_id)
    asked = [(_text(item, "numeric"), _names(item)) for item in items]
    valid = [numeric for numeric, _ in asked if dnc.valid_number(numeric)]
    held = dict(zip(valid, await dnc.entries_holding(conn, account_id, valid), strict=True))
    removing: list[int] = []
    for numeric, names in asked:
        if not dnc.valid_number(numeric):
            raise RefusedError(INVALID_NUMBER)
        if any(name not in campaigns for name in names):
            raise RefusedError(UNKNOWN_CAMPAIGN)
        ids = {campaigns[name] for name in names}
        found = [e.entry_id for e in held[numeric] if not ids or e.campaign_id in ids]
        if not found:
            raise RefusedError(does_not_exist(numeric))
        removing.extend(found)
    await dnc.remove_entries(conn, ctx, account_id, sorted(set(removing)))
    return REMOVED
