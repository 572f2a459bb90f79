"""Per-lead commands: update, delete, archive and dearchive live or archived leads.

Each function runs inside the caller's transaction. It takes the campaign locks first (ascending
ids), reads what it must decide on (current state) while holding them, and writes with `record`,
so safe deletes are exact across processes. New leads are inserted by `lead_inserts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, NamedTuple, cast

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import (
    LEAD_EVENT_TYPES,
    DomainEvent,
    LeadEvent,
    stream_of_lead,
)
from lead_ledger.ledger.lead import (
    LeadError,
    LeadState,
    RowTimes,
    decide_archive,
    decide_dearchive,
    decide_delete,
    decide_update,
    fold,
)
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.opening import open_pairs
from lead_ledger.ledger.store import read_streams
from lead_ledger.service import dnc, dnc_marks
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.writer import (
    Context,
    PendingAppend,
    account_digest,
    record,
    stream_append,
)

SELECT_LIVE_CAMPAIGNS: Final = """
SELECT lead_id, campaign_id FROM leads WHERE account_id = $1 AND lead_id = ANY($2::bigint[])
"""
SELECT_ARCHIVED: Final = """
SELECT lead_id, campaign_id, entry_at FROM lead_archive
WHERE account_id = $1 AND lead_id = ANY($2::bigint[])
"""
SELECT_LIVE_TIMES: Final = """
SELECT lead_id, entry_at, modified_at FROM leads WHERE lead_id = ANY($1::bigint[])
"""


class LeadsNotFoundError(LeadError):
    """Some required lead ids were not found (live, or archived); nothing was written."""

    def __init__(self, found: set[int]) -> None:
        super().__init__("some lead ids do not exist")
        self.found = found


class ArchiveCounts(msgspec.Struct, frozen=True, kw_only=True):
    select_count: int
    insert_count: int
    update_count: int
    delete_count: int


def lead_append(ctx: Context, state: LeadState, events: Sequence[LeadEvent]) -> PendingAppend:
    """New events for a lead, expected at the version its state was folded to."""
    return stream_append(
        ctx, stream_of_lead(state.lead_id), state.version, events, account_id=state.account_id
    )


async def lock_leads_in(
    conn: Connection, select: str, account_id: int, lead_ids: Iterable[int]
) -> list[asyncpg.Record]:
    """Lock the campaigns of the rows `select` finds among `lead_ids`; return the rows it finds
    again under those locks.

    A lead's campaign never changes, so the first read only says which campaigns to lock. Whether
    a lead is still there is decided by the second read, under the locks: a concurrent writer
    may have deleted, archived or restored it while this one waited, and a lead gone by then is
    absent from the result, exactly like a missing or foreign id. `select` takes the account id
    and the lead ids and returns `lead_id` and `campaign_id`.
    """
    before = await conn.fetch(select, account_id, list(lead_ids))
    if not before:
        return []
    await lock_campaigns(conn, {row["campaign_id"] for row in before})
    rows: list[asyncpg.Record] = await conn.fetch(
        select, account_id, [row["lead_id"] for row in before]
    )
    return rows


async def lock_live_leads(conn: Connection, account_id: int, lead_ids: Iterable[int]) -> set[int]:
    """Lock the campaigns of this account's live leads among `lead_ids`; return the ids still
    live once the locks are held. Foreign and missing ids are simply absent from the result."""
    return {
        row["lead_id"]
        for row in await lock_leads_in(conn, SELECT_LIVE_CAMPAIGNS, account_id, lead_ids)
    }


async def load_leads(conn: Connection, lead_ids: Iterable[int]) -> dict[int, LeadState]:
    """Current states folded from the streams (one query for all of them)."""
    streams = await read_streams(conn, [stream_of_lead(i) for i in lead_ids])
    opened = await open_pairs(conn, [e for events in streams.values() for e in events])
    by_stream: dict[str, list[DomainEvent]] = {}
    for recorded, event in opened:
        by_stream.setdefault(recorded.stream_id, []).append(event)
    states: dict[int, LeadState] = {}
    for events in by_stream.values():
        state = fold(_lead_events(events))
        if state is not None:
            states[state.lead_id] = state
    return states


def _lead_events(events: Iterable[DomainEvent]) -> Iterable[LeadEvent]:
    return (cast("LeadEvent", e) for e in events if isinstance(e, LEAD_EVENT_TYPES))


class Updated(NamedTuple):
    """What `update_leads` wrote per lead, and the leads it left as they were because the
    update would have given them a number on the do-not-call list."""

    written: dict[int, list[LeadEvent]]
    blocked: dict[int, DncBlock]


async def update_leads(
    conn: Connection,
    ctx: Context,
    *,
    account_id: int,
    patches: Mapping[int, Mapping[str, object]],
    dnc_when_all: bool = False,
    dnc_marked: bool = False,
) -> Updated:
    """Apply field patches to live leads; only real changes become events. Unknown or foreign
    lead ids are skipped (absent from the result). A lead whose new numbers the do-not-call
    registry blocks in its campaign is not changed (with `dnc_when_all`, only when it blocks
    every one of them: jtel flags numbers one by one; with `dnc_marked`, never: it is changed
    and marked, for APIs that ask for no check, Vicidial's)."""
    live = await lock_live_leads(conn, account_id, patches)
    states = await load_leads(conn, live)
    region = await default_region(conn, account_id)
    decided = {
        lead_id: decide_update(states[lead_id], patches[lead_id], region)
        for lead_id in sorted(live)
    }
    checked = await dnc.check_updates(
        conn,
        account_id,
        {i: (states[i], events) for i, events in decided.items()},
        when_all=dnc_when_all,
        marked=dnc_marked,
    )
    written = {
        i: [*events, *checked.marks.get(i, ())]
        for i, events in decided.items()
        if i not in checked.blocked
    }
    appends = [lead_append(ctx, states[i], events) for i, events in written.items() if events]
    await record(conn, appends)
    return Updated(written=written, blocked=checked.blocked)


async def delete_leads(
    conn: Connection, ctx: Context, *, account_id: int, lead_ids: Sequence[int]
) -> list[int]:
    """Delete live leads (reason api); returns the ids deleted."""
    live = await lock_live_leads(conn, account_id, lead_ids)
    states = await load_leads(conn, live)
    appends = [
        lead_append(ctx, states[lead_id], [decide_delete(states[lead_id])])
        for lead_id in sorted(live)
    ]
    await record(conn, appends)
    return sorted(live)


async def archive_leads(
    conn: Connection,
    ctx: Context,
    *,
    account_id: int,
    lead_ids: Sequence[int],
    insert: bool,
    update: bool,
    delete: bool,
    required: Sequence[int] | None = None,
) -> ArchiveCounts:
    """The Vicidial archive: insert, re-sync, then safe-delete, per lead, in one transaction.

    With `required`, raises LeadsNotFoundError before writing anything when one of those ids is not
    live in the account; existence is decided by the same read, under the same locks, that the
    archive then acts on.
    """
    live = await lock_live_leads(conn, account_id, lead_ids)
    _require(required, live)
    states = await load_leads(conn, live)
    times = {
        row["lead_id"]: RowTimes(entry_at=row["entry_at"], modified_at=row["modified_at"])
        for row in await conn.fetch(SELECT_LIVE_TIMES, list(live))
    }
    appends = []
    inserted = synced = deleted = 0
    for lead_id in sorted(live):
        state = states[lead_id]
        outcome = decide_archive(
            state, insert=insert, update=update, delete=delete, times=times.get(lead_id)
        )
        inserted += outcome.inserted
        synced += outcome.synced
        deleted += outcome.deleted
        if outcome.events:
            appends.append(lead_append(ctx, state, outcome.events))
    await record(conn, appends)
    return ArchiveCounts(
        select_count=len(live),
        insert_count=inserted,
        update_count=synced,
        delete_count=deleted,
    )


async def _registry_of_archives(
    conn: Connection, account_id: int, states: Iterable[LeadState]
) -> dnc.Blocking:
    """The do-not-call entries blocking the archived numbers, read under the locks."""
    keys = [key for state in states if state.archive for key in state.archive.dedupe_keys]
    digest = await account_digest(conn, account_id)
    return await dnc.blocking(conn, account_id, digest, keys)


def _restored_marks(state: LeadState, registry: dnc.Blocking) -> list[LeadEvent]:
    """A restored lead comes back marked when the registry now blocks one of its numbers: the
    archive API has no answer for a refused lead, and a lead that existed before its number was
    blocked is marked, as it would have been had it stayed live (docs/dnc.md)."""
    if state.archive is None:
        return []
    blocks = registry.every_block(state.archive.dedupe_keys, state.campaign_id)
    return dnc_marks.lead_mark_events(state.lead_id, {}, blocks)


def _require(required: Sequence[int] | None, found: set[int]) -> None:
    if required is not None and not found.issuperset(required):
        raise LeadsNotFoundError(found)


async def dearchive_leads(
    conn: Connection,
    ctx: Context,
    *,
    account_id: int,
    lead_ids: Sequence[int],
    insert: bool,
    delete: bool,
    required: Sequence[int] | None = None,
) -> ArchiveCounts:
    """The reverse: restore archived leads into live, then drop archive rows equal to live.

    With `required`, raises LeadsNotFoundError before writing when one of them is not archived."""
    # Which leads are archived (and so what select_count says) is decided under the locks.
    rows = await lock_leads_in(conn, SELECT_ARCHIVED, account_id, lead_ids)
    archived = {row["lead_id"]: row["entry_at"] for row in rows}
    _require(required, set(archived))
    states = await load_leads(conn, archived)
    region = await default_region(conn, account_id)
    registry = await _registry_of_archives(conn, account_id, states.values())
    appends = []
    inserted = deleted = 0
    for lead_id in sorted(archived):
        state = states[lead_id]
        try:
            outcome = decide_dearchive(
                state,
                insert=insert,
                delete=delete,
                default_region=region,
                entry_at=archived[lead_id],
            )
        except LeadError:
            continue  # the archive row vanished between read and lock: nothing to do
        inserted += outcome.inserted
        deleted += outcome.deleted
        if outcome.events:
            marks = _restored_marks(state, registry) if outcome.inserted else []
            appends.append(lead_append(ctx, state, [*outcome.events, *marks]))
    await record(conn, appends)
    return ArchiveCounts(
        select_count=len(archived),
        insert_count=inserted,
        update_count=0,
        delete_count=deleted,
    )
