"""TForge's Vicidial lead archive API in the service layer: the office-hours window, and the
archive and dearchive transactions on top of service.leads.

Input is typed (`ArchiveRequest`, `DearchiveRequest`; the vendor's wire validation is
api/vicidial_wire.py) and outcomes are values: the counts, `WindowClosed` or `MissingLeads`.
What the vendor answers for each is the api layer's business.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Final, Literal

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import OfficeHours
from lead_ledger.ledger.office_hours import within_office_hours
from lead_ledger.service.inputs import BIGINT_MAX
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

Route = Literal["archive", "dearchive"]


class ArchiveRequest(msgspec.Struct, frozen=True):
    """Archive these live leads: copy into the archive, re-sync copies, safe-delete from live."""

    insert_leads: bool
    update_leads: bool
    delete_leads: bool
    lead_ids: list[int]


class DearchiveRequest(msgspec.Struct, frozen=True):
    """Restore these archived leads into live, then drop archive rows equal to live."""

    insert_leads: bool
    delete_leads: bool
    lead_ids: list[int]


class WindowClosed(msgspec.Struct, frozen=True):
    """The route may not run now: archive runs outside office hours, dearchive inside them."""

    route: Route


class MissingLeads(msgspec.Struct, frozen=True):
    """Requested ids that are not (or no longer) the account's live (archived) leads."""

    lead_ids: list[int]


# --- office hours -------------------------------------------------------------------------------


async def closed_window(
    pool: asyncpg.Pool, account_id: int, now: datetime, route: Route
) -> WindowClosed | None:
    """Archive runs only outside the account's office hours, dearchive only inside them; with
    no office hours configured both always run. The vendor checks this before it reads the
    body, so it is a call of its own."""
    async with pool.acquire() as conn:
        raw = await conn.fetchval(SELECT_OFFICE_HOURS, account_id)
    hours = None if raw is None else msgspec.json.decode(raw, type=OfficeHours | None)
    if hours is None:
        return None
    inside = within_office_hours(hours, now)
    if (route == "archive") == inside:
        return WindowClosed(route)
    return None


# --- the requests -------------------------------------------------------------------------------


# Writes one request's leads in the open transaction: archive_leads or dearchive_leads.
_Write = Callable[[Connection], Awaitable[ArchiveCounts]]


async def _write(
    pool: asyncpg.Pool, lead_ids: Sequence[int], write: _Write
) -> ArchiveCounts | MissingLeads:
    """The write in one transaction. Existence is decided under the campaign locks, by the same
    read the write acts on, so a lead deleted concurrently is missing rather than skipped; a
    refusal leaves the transaction before anything is written."""
    async with pool.acquire() as conn:
        try:
            async with write_transaction(conn):
                return await write(conn)
        except LeadsNotFoundError as not_found:
            return MissingLeads([i for i in lead_ids if i not in not_found.found])


async def archive(
    pool: asyncpg.Pool, ctx: Context, account_id: int, request: ArchiveRequest
) -> ArchiveCounts | MissingLeads:
    """Insert into the archive, re-sync, then safe-delete from live, in one transaction."""

    async def write(conn: Connection) -> ArchiveCounts:
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

    return await _write(pool, request.lead_ids, write)


async def dearchive(
    pool: asyncpg.Pool, ctx: Context, account_id: int, request: DearchiveRequest
) -> ArchiveCounts | MissingLeads:
    """Restore into live, then drop archive rows equal to live, in one transaction."""

    async def write(conn: Connection) -> ArchiveCounts:
        return await dearchive_leads(
            conn,
            ctx,
            account_id=account_id,
            lead_ids=_possible(request.lead_ids),
            insert=request.insert_leads,
            delete=request.delete_leads,
            required=request.lead_ids,
        )

    return await _write(pool, request.lead_ids, write)


def _possible(ids: Sequence[int]) -> list[int]:
    # Larger (or non-positive) ids cannot exist: never sent to SQL.
    return [i for i in ids if 0 < i <= BIGINT_MAX]
