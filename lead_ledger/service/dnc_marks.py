"""Do-not-call marks on live leads (docs/dnc.md, "Marked leads").

A live lead carries a LeadMarkedDnc for every Active registry entry, in its scope, that holds
one of its numbers, with the entry's expiry; it reads `DNC` while one of those has not expired.
Two kinds of write keep that true, each under the campaign locks that inserts and registry
writes take, so that neither can miss the other:

- a registry write (`follow_entries`): an entry added or made to block marks the live leads
  that hold its number; one removed, turned Inactive or given a past expiry clears its marks;
- a lead write that sets numbers (an update, a jtel import that flags some numbers, a
  dearchive): `lead_mark_events` marks the lead for the entries that block its new numbers
  and clears the marks of entries whose number it no longer has.

An entry that merely expires is not an event: reads compare the mark's expiry with their now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import (
    DncClearReason,
    LeadDncCleared,
    LeadEvent,
    LeadMarkedDnc,
    stream_of_lead,
)
from lead_ledger.service.writer import Context, record, stream_append

if TYPE_CHECKING:
    from lead_ledger.service.dnc import DncBlock

# What a marked lead's status reads, in every dialect's read that has a status.
DNC_STATUS: Final = "DNC"
# A `leads` row's mark, as a column of a query over it (named `l`): true while an entry that
# marks the lead has not expired.
MARKED_DNC: Final = """EXISTS (SELECT 1 FROM lead_dnc m
        WHERE m.lead_id = l.lead_id AND (m.expires_at IS NULL OR m.expires_at > now())) AS dnc"""
# The entries as they now are (a removed entry has no row), with whether each blocks now.
SELECT_ENTRY_STATES: Final = """
SELECT entry_id, campaign_id, number, expires_at, status = 'Active' AS active,
       expires_at IS NOT NULL AND expires_at <= now() AS expired
FROM dnc WHERE account_id = $1 AND entry_id = ANY($2::bigint[])
"""
SELECT_MARKS_OF_ENTRIES: Final = """
SELECT lead_id, entry_id, expires_at FROM lead_dnc WHERE entry_id = ANY($1::bigint[])
"""
# The account's live leads that hold each entry's number in its scope (every campaign when
# `campaign_id` is null): one probe of the contact index per entry.
SELECT_HOLDERS: Final = """
SELECT c.lead_id, e.entry_id
FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS e (entry_id, number, campaign_id)
JOIN contacts c ON c.kind = 'phone' AND c.value = e.number
JOIN leads l ON l.lead_id = c.lead_id
WHERE l.account_id = $1 AND (e.campaign_id IS NULL OR c.campaign_id = e.campaign_id)
"""
SELECT_VERSIONS: Final = "SELECT lead_id, version FROM leads WHERE lead_id = ANY($1::bigint[])"
SELECT_NUMBERS: Final = "SELECT entry_id, number FROM dnc WHERE entry_id = ANY($1::bigint[])"


def lead_mark_events(
    lead_id: int,
    marks: Mapping[int, datetime | None],
    blocks: Sequence[DncBlock],
    *,
    dropped: Iterable[int] = (),
) -> list[LeadEvent]:
    """The events that bring a lead's marks (entry id -> expiry) in line with the entries that
    block its numbers now (`blocks`): those it lacks, or holds with another expiry, are marked;
    `dropped` are marked entries whose number the lead no longer has, cleared."""
    events: list[LeadEvent] = [
        LeadDncCleared(lead_id=lead_id, dnc_entry_id=entry_id, reason="number_changed")
        for entry_id in sorted(set(dropped))
        if entry_id in marks
    ]
    events.extend(
        LeadMarkedDnc(
            lead_id=lead_id,
            dnc_entry_id=block.entry_id,
            dnc_scope=block.scope,
            expires_at=block.expires_at,
        )
        for block in blocks
        if block.entry_id not in marks or marks[block.entry_id] != block.expires_at
    )
    return events


async def entry_numbers(conn: Connection, entry_ids: Iterable[int]) -> dict[int, str]:
    """The dedupe key each entry holds (entries still in the registry)."""
    ids = sorted(set(entry_ids))
    if not ids:
        return {}
    return {r["entry_id"]: r["number"] for r in await conn.fetch(SELECT_NUMBERS, ids)}


# The live leads that entries just added (and blocking now) hold, in one statement: a new
# entry marks no lead yet, so there is nothing to compare with.
SELECT_HOLDERS_OF_NEW: Final = """
SELECT c.lead_id, d.entry_id, d.campaign_id, d.expires_at
FROM dnc d
JOIN contacts c ON c.kind = 'phone' AND c.value = d.number
JOIN leads l ON l.lead_id = c.lead_id AND l.account_id = d.account_id
WHERE d.entry_id = ANY($1::bigint[])
  AND d.status = 'Active' AND (d.expires_at IS NULL OR d.expires_at > now())
  AND (d.campaign_id IS NULL OR c.campaign_id = d.campaign_id)
ORDER BY c.lead_id, d.entry_id
"""


async def mark_new_entries(
    conn: Connection, ctx: Context, account_id: int, entry_ids: Sequence[int]
) -> int:
    """`follow_entries` for entries just added (an import's 10,000 at a time): one query for the
    leads they mark. Returns the number of lead events written."""
    if not entry_ids:
        return 0
    events: dict[int, list[LeadEvent]] = {}
    for row in await conn.fetch(SELECT_HOLDERS_OF_NEW, list(entry_ids)):
        events.setdefault(row["lead_id"], []).append(
            LeadMarkedDnc(
                lead_id=row["lead_id"],
                dnc_entry_id=row["entry_id"],
                dnc_scope="account" if row["campaign_id"] is None else "campaign",
                expires_at=row["expires_at"],
            )
        )
    return await _record_lead_events(conn, ctx, account_id, events)


async def follow_entries(
    conn: Connection, ctx: Context, account_id: int, entry_ids: Sequence[int]
) -> int:
    """Mark and clear live leads after these entries were added, changed or removed; in the
    registry write's transaction, after its events, under its locks. Returns the number of lead
    events written."""
    if not entry_ids:
        return 0
    entries = {
        r["entry_id"]: r for r in await conn.fetch(SELECT_ENTRY_STATES, account_id, entry_ids)
    }
    marks = {
        (r["lead_id"], r["entry_id"]): r["expires_at"]
        for r in await conn.fetch(SELECT_MARKS_OF_ENTRIES, list(entry_ids))
    }
    blocking = [e for e in entries.values() if e["active"] and not e["expired"]]
    holders: set[tuple[int, int]] = set()
    if blocking:
        rows = await conn.fetch(
            SELECT_HOLDERS,
            account_id,
            [e["entry_id"] for e in blocking],
            [e["number"] for e in blocking],
            [e["campaign_id"] for e in blocking],
        )
        holders = {(r["lead_id"], r["entry_id"]) for r in rows}
    events: dict[int, list[LeadEvent]] = {}
    for lead_id, entry_id in sorted(holders):
        entry = entries[entry_id]
        key = (lead_id, entry_id)
        if key not in marks or marks[key] != entry["expires_at"]:
            events.setdefault(lead_id, []).append(
                LeadMarkedDnc(
                    lead_id=lead_id,
                    dnc_entry_id=entry_id,
                    dnc_scope="account" if entry["campaign_id"] is None else "campaign",
                    expires_at=entry["expires_at"],
                )
            )
    for lead_id, entry_id in sorted(marks.keys() - holders):
        reason = _cleared_because(entries.get(entry_id))
        events.setdefault(lead_id, []).append(
            LeadDncCleared(lead_id=lead_id, dnc_entry_id=entry_id, reason=reason)
        )
    return await _record_lead_events(conn, ctx, account_id, events)


async def _record_lead_events(
    conn: Connection, ctx: Context, account_id: int, events: Mapping[int, Sequence[LeadEvent]]
) -> int:
    """Append each lead's events at its version (read under the locks the caller holds)."""
    if not events:
        return 0
    versions = {
        r["lead_id"]: r["version"] for r in await conn.fetch(SELECT_VERSIONS, sorted(events))
    }
    await record(
        conn,
        [
            stream_append(
                ctx, stream_of_lead(lead_id), versions[lead_id], lead_events, account_id=account_id
            )
            for lead_id, lead_events in sorted(events.items())
        ],
    )
    return sum(len(e) for e in events.values())


def _cleared_because(entry: asyncpg.Record | None) -> DncClearReason:
    if entry is None:
        return "removed"
    if not entry["active"]:
        return "inactive"
    if entry["expired"]:
        return "expired"
    return "number_changed"  # the entry blocks, but the lead no longer holds its number
