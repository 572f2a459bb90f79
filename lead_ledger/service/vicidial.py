"""TForge's Vicidial lead archive API: vendor-exact validation, office hours, and the archive and
dearchive transactions on top of service.leads.

The vendor validates the raw JSON itself (its messages name the field and list the offending
values as sent), so the body is decoded untyped and checked here in the vendor's order rather
than by a typed msgspec decode, whose errors would not match the vendor's messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Final, Literal, cast

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import OfficeHours
from lead_ledger.ledger.office_hours import within_office_hours
from lead_ledger.service.leads import (
    ArchiveCounts,
    LeadsNotFoundError,
    archive_leads,
    dearchive_leads,
)
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context

SELECT_OFFICE_HOURS: Final = "SELECT office_hours FROM settings WHERE account_id = $1"

MAX_LEAD_IDS: Final = 500
_MAX_BIGINT: Final = 2**63 - 1  # larger (or non-positive) ids cannot exist: never sent to SQL

SUCCESS: Final = "lead_ids batch was successfully processed"
UNAUTHORIZED: Final = "unable to validate api user"
ARCHIVE_IN_HOURS: Final = "api cannot be executed during office hours time condition"
DEARCHIVE_OUT_OF_HOURS: Final = "api can only be executed during office hours time condition"
NOT_INTEGERS: Final = "lead_ids must only contain integer values"
EMPTY: Final = "lead_ids must contain atleast 1 value"  # sic: the vendor's spelling
TOO_MANY: Final = "lead_ids cannot exceed 500 values"
DUPLICATES: Final = "lead_ids cannot contain duplicate values"
MISSING: Final = "lead_ids does not exist"
NOT_AN_OBJECT: Final = "request body must be a JSON object"

ARCHIVE_FLAGS: Final = ("insert_leads", "update_leads", "delete_leads")
DEARCHIVE_FLAGS: Final = ("insert_leads", "delete_leads")


class Message(msgspec.Struct, frozen=True):
    message: str


class LeadErrors(msgspec.Struct, frozen=True):
    """The vendor's error body: the message, how many lead ids are at fault, and which."""

    message: str
    lead_errors: int = 0
    lead_ids: list[Any] = []


class Processed(msgspec.Struct, frozen=True):
    message: str
    select_count: int
    insert_count: int
    update_count: int
    delete_count: int


class Refusal(msgspec.Struct, frozen=True):
    status: int
    body: LeadErrors | Message


class ArchiveRequest(msgspec.Struct, frozen=True, kw_only=True):
    insert_leads: bool
    update_leads: bool = False
    delete_leads: bool
    lead_ids: list[int]


# --- decoding and validation (pure) ---------------------------------------------------------------


def parse_request(body: bytes, flags: Sequence[str]) -> ArchiveRequest | Refusal:
    """The request, or the vendor's answer to the first thing wrong with it, in its order."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        return Refusal(500, LeadErrors(malformed_message(body, str(error))))
    except msgspec.MsgspecError as error:  # a number too large for a float, say
        return Refusal(500, LeadErrors(str(error)))
    if not isinstance(data, dict):
        return Refusal(500, LeadErrors(NOT_AN_OBJECT))
    for flag in flags:
        if not isinstance(data.get(flag), bool):
            return Refusal(400, LeadErrors(f"{flag} must be a boolean value"))
    ids = data.get("lead_ids")
    problem = _lead_ids_problem(ids)
    if problem is not None:
        return Refusal(400, problem)
    return ArchiveRequest(
        insert_leads=data["insert_leads"],
        update_leads=data.get("update_leads") is True,  # dearchive neither needs nor reads it
        delete_leads=data["delete_leads"],
        lead_ids=cast("list[int]", ids),  # _lead_ids_problem accepted only a list of ints
    )


def _lead_ids_problem(ids: object) -> LeadErrors | None:
    if ids is None:
        return LeadErrors(EMPTY)
    if not isinstance(ids, list):
        return LeadErrors(NOT_INTEGERS, 1, [ids])  # one value, and not a list of integers
    # bool is an int in Python but not in JSON; 1.0 is a JSON number, not an integer.
    wrong = [value for value in ids if not _is_integer(value)]
    if wrong:
        return LeadErrors(NOT_INTEGERS, len(wrong), wrong)
    if not ids:
        return LeadErrors(EMPTY)
    if len(ids) > MAX_LEAD_IDS:
        return LeadErrors(TOO_MANY)
    repeated = _repeated(ids)
    return LeadErrors(DUPLICATES, len(repeated), repeated) if repeated else None


def _repeated(ids: list[Any]) -> list[Any]:
    """Each value that occurs more than once, once, in the order of its first repeat."""
    seen: set[int] = set()
    repeated: dict[int, None] = {}
    for value in ids:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    return list(repeated)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def malformed_message(body: bytes, error: str) -> str:
    """msgspec's reason with a Newtonsoft-style location ("Path 'lead_ids[97]', line 104,
    position 5."), the shape the vendor's 500 shows, computed from msgspec's byte offset."""
    reason, _, rest = error.partition(" (byte ")
    offset = int(rest.rstrip(")")) if rest.rstrip(")").isdigit() else len(body)
    prefix = body[:offset].decode("utf-8", "replace")
    if offset < len(body):
        character = body[offset : offset + 1].decode("utf-8", "replace")
        reason = f"{reason} {character!r}"
    line = prefix.count("\n") + 1
    position = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
    return f"{reason}. Path '{json_path(prefix)}', line {line}, position {position}."


def json_path(prefix: str) -> str:
    """The JSON path (`lead_ids[97]`) of the value being read where `prefix` ends."""
    stack: list[list[Any]] = []  # ["obj", key, expecting_key] or ["arr", index]
    i = 0
    while i < len(prefix):
        char = prefix[i]
        if char == '"':
            end = _string_end(prefix, i)
            if stack and stack[-1][0] == "obj" and stack[-1][2]:
                stack[-1][1:] = [prefix[i + 1 : end], False]
            i = end + 1
            continue
        if char in "{[":
            stack.append(["obj", None, True] if char == "{" else ["arr", 0])
        elif char in "}]" and stack:
            stack.pop()
        elif char == "," and stack:
            if stack[-1][0] == "arr":
                stack[-1][1] += 1
            else:
                stack[-1][2] = True
        i += 1
    return _render_path(stack)


def _string_end(text: str, start: int) -> int:
    """The index of the quote closing the string opened at `start` (or the end of `text`)."""
    end = start + 1
    while end < len(text) and text[end] != '"':
        end += 2 if text[end] == "\\" else 1
    return end


def _render_path(stack: list[list[Any]]) -> str:
    path = ""
    for frame in stack:
        if frame[0] == "arr":
            path += f"[{frame[1]}]"
        elif frame[1] is not None:
            path += f".{frame[1]}" if path else str(frame[1])
    return path


# --- office hours -------------------------------------------------------------------------------


async def office_hours_refusal(
    conn: Connection, account_id: int, now: datetime, route: Literal["archive", "dearchive"]
) -> Refusal | None:
    """Archive runs only outside the account's office hours, dearchive only inside them; with
    no office hours configured both always run."""
    raw = await conn.fetchval(SELECT_OFFICE_HOURS, account_id)
    hours = None if raw is None else msgspec.json.decode(raw, type=OfficeHours | None)
    if hours is None:
        return None
    inside = within_office_hours(hours, now)
    if route == "archive" and inside:
        return Refusal(403, Message(ARCHIVE_IN_HOURS))
    if route == "dearchive" and not inside:
        return Refusal(403, Message(DEARCHIVE_OUT_OF_HOURS))
    return None


# --- the requests -------------------------------------------------------------------------------


# Writes one request's leads in the open transaction: archive_leads or dearchive_leads.
_Write = Callable[[Connection, ArchiveRequest], Awaitable[ArchiveCounts]]


async def _handle(
    pool: asyncpg.Pool,
    account_id: int,
    body: bytes,
    now: datetime,
    action: Literal["archive", "dearchive"],
    flags: Sequence[str],
    write: _Write,
) -> Processed | Refusal:
    """Office hours, validation, then the write in one transaction. Existence is decided under
    the campaign locks, by the same read the write acts on, so a lead deleted concurrently is
    refused rather than skipped; a refusal leaves the transaction before anything is written."""
    async with pool.acquire() as conn:
        refused = await office_hours_refusal(conn, account_id, now, action)
        if refused is not None:
            return refused
        request = parse_request(body, flags)
        if isinstance(request, Refusal):
            return request
        try:
            async with write_transaction(conn):
                counts = await write(conn, request)
        except LeadsNotFoundError as not_found:
            return _missing(request.lead_ids, not_found.found)
    return _processed(counts)


async def archive(
    pool: asyncpg.Pool, ctx: Context, account_id: int, body: bytes, now: datetime
) -> Processed | Refusal:
    """Office hours, validation, then insert/re-sync/safe-delete in one transaction."""

    async def write(conn: Connection, request: ArchiveRequest) -> ArchiveCounts:
        return await archive_leads(
            conn,
            ctx,
            account_id=account_id,
            lead_ids=_possible(request.lead_ids),
            insert=request.insert_leads,
            update=request.update_leads,
            delete=request.delete_leads,
            required=request.lead_ids,
        )

    return await _handle(pool, account_id, body, now, "archive", ARCHIVE_FLAGS, write)


async def dearchive(
    pool: asyncpg.Pool, ctx: Context, account_id: int, body: bytes, now: datetime
) -> Processed | Refusal:
    """Office hours, validation, then restore/drop-archive in one transaction."""

    async def write(conn: Connection, request: ArchiveRequest) -> ArchiveCounts:
        return await dearchive_leads(
            conn,
            ctx,
            account_id=account_id,
            lead_ids=_possible(request.lead_ids),
            insert=request.insert_leads,
            delete=request.delete_leads,
            required=request.lead_ids,
        )

    return await _handle(pool, account_id, body, now, "dearchive", DEARCHIVE_FLAGS, write)


def _possible(ids: Sequence[int]) -> list[int]:
    return [i for i in ids if 0 < i <= _MAX_BIGINT]


def _missing(ids: Sequence[int], found: set[int]) -> Refusal:
    missing = [i for i in ids if i not in found]
    return Refusal(400, LeadErrors(MISSING, len(missing), missing))


def _processed(counts: ArchiveCounts) -> Processed:
    return Processed(
        SUCCESS,
        counts.select_count,
        counts.insert_count,
        counts.update_count,
        counts.delete_count,
    )
