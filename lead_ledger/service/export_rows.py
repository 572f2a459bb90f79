"""The leads an export holds, a batch at a time in lead id order: now (from the views) or as
they stood at a time (folded from the log, never from today's views).

Now: one cursor over the live leads and, when asked, the archive, so the whole export reads one
snapshot of the database however long it takes. As of a time: the account's lead streams that
began by then, folded a batch of streams at a time with `reads.fold_lead_view`, the function
`GET /v1/leads/{id}?as_of=` answers with, so the two cannot disagree. A lead updated since shows
its old values, one deleted since is there, one inserted since is not, and an erased subject's
fields are empty (its events open to the erased state).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadArchived, LeadArchiveSynced, LeadEvent
from lead_ledger.ledger.lead import LeadError, LeadState, evolve
from lead_ledger.ledger.opening import Pair, open_pairs
from lead_ledger.ledger.store import read_streams
from lead_ledger.projections.leads import LEAD_COLUMNS
from lead_ledger.service.dnc_marks import MARKED_DNC
from lead_ledger.service.reads import LeadView, fold_lead_view, lead_view_of_row

BATCH: Final = 1000

_COLUMNS: Final = ", ".join(f"l.{column}" for column in LEAD_COLUMNS)
# Live leads, then (with $3) archived ones that are not live too (an archive copy of a live lead
# is the lead's, shown once, live), merged in lead id order by their (account_id, lead_id)
# indexes. An archived lead is not dialled, so it reads no do-not-call mark.
# ($1 account, $2 campaign or NULL, $3 include archived.) Both renderings of an export of now
# read these rows: this module's, and PostgreSQL's csv (service/export_sql.py).
EXPORTED_NOW: Final = f"""
SELECT {_COLUMNS}, {MARKED_DNC}, false AS archived FROM leads l
WHERE l.account_id = $1 AND ($2::bigint IS NULL OR l.campaign_id = $2)
UNION ALL
SELECT {_COLUMNS}, false AS dnc, true AS archived FROM lead_archive l
WHERE $3 AND l.account_id = $1 AND ($2::bigint IS NULL OR l.campaign_id = $2)
  AND NOT EXISTS (SELECT 1 FROM leads x WHERE x.lead_id = l.lead_id)
"""
SELECT_NOW: Final = f"SELECT * FROM ({EXPORTED_NOW}) rows ORDER BY lead_id"
# Every lead stream of the account begun by then: a lead's stream begins with its LeadInserted,
# which carries its campaign in the clear. Leads never change campaign. ($4, $5: the lead ids
# after and up to which one worker's share runs, service/export_parallel.py; NULL: no bound.)
_BEGUN: Final = """
FROM events
WHERE account_id = $1 AND type = 'LeadInserted' AND recorded_at <= $2
  AND ($3::bigint IS NULL OR (data->>'campaign_id')::bigint = $3)
"""
SELECT_STREAMS_BEGUN: Final = f"""
SELECT stream_id {_BEGUN}
  AND ($4::bigint IS NULL OR (data->>'lead_id')::bigint > $4)
  AND ($5::bigint IS NULL OR (data->>'lead_id')::bigint <= $5)
ORDER BY (data->>'lead_id')::bigint
"""
NO_PARALLEL_READS: Final = "SET LOCAL max_parallel_workers_per_gather = 0"
# How many streams began by then, and the lead ids that cut them into shares of equal size
# ($4: the fractions, for instance {0.5} for two shares).
SELECT_SHARES: Final = f"""
SELECT count(*) AS streams,
       percentile_disc($4::float8[]) WITHIN GROUP (ORDER BY (data->>'lead_id')::bigint) AS cuts
{_BEGUN}
"""


class ExportQuery(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    campaign_id: int | None  # None: every campaign of the account
    as_of: datetime | None  # None: now
    include_archived: bool = False
    # As of a time, the share of the leads one export worker folds: lead ids after `after`
    # and up to `until` (None: unbounded).
    after: int | None = None
    until: int | None = None


class ExportLead(msgspec.Struct, frozen=True):
    """One row of the export: the lead as the native API shows it, and whether it is archived."""

    lead: LeadView
    archived: bool


async def export_leads(conn: Connection, query: ExportQuery) -> AsyncIterator[list[ExportLead]]:
    """The export's leads in batches of up to BATCH. Run it inside a transaction (a cursor)."""
    if query.as_of is None:
        async for batch in _now(conn, query):
            yield batch
    else:
        async for batch in _as_of(conn, query, query.as_of):
            yield batch


async def _now(conn: Connection, query: ExportQuery) -> AsyncIterator[list[ExportLead]]:
    batch: list[ExportLead] = []
    cursor = conn.cursor(
        SELECT_NOW, query.account_id, query.campaign_id, query.include_archived, prefetch=BATCH
    )
    async for row in cursor:
        batch.append(ExportLead(lead_view_of_row(row), row["archived"]))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _as_of(
    conn: Connection, query: ExportQuery, at: datetime
) -> AsyncIterator[list[ExportLead]]:
    # A batch's read is an index scan of a thousand streams, repeated a thousand times for a
    # million leads. Without statistics on a young table PostgreSQL estimates it at tens of
    # thousands of rows and plans it parallel: starting its two helpers costs ~20 ms a read,
    # ten times the read itself (docs/performance.md, "Exports").
    await conn.execute(NO_PARALLEL_READS)
    streams: list[str] = []
    cursor = conn.cursor(
        SELECT_STREAMS_BEGUN,
        query.account_id,
        at,
        query.campaign_id,
        query.after,
        query.until,
        prefetch=BATCH,
    )
    async for row in cursor:
        streams.append(row["stream_id"])
        if len(streams) == BATCH:
            yield await _fold_batch(conn, query, at, streams)
            streams = []
    if streams:
        yield await _fold_batch(conn, query, at, streams)


async def _fold_batch(
    conn: Connection, query: ExportQuery, at: datetime, stream_ids: list[str]
) -> list[ExportLead]:
    """The batch's leads as of `at`, in the order given (lead id order)."""
    found = await read_streams(conn, stream_ids, up_to_time=at)
    recorded = [event for stream in stream_ids for event in found.get(stream, ())]
    opened = await open_pairs(conn, recorded)
    by_stream: dict[str, list[Pair]] = {}
    for pair in opened:
        by_stream.setdefault(pair[0].stream_id, []).append(pair)
    leads: list[ExportLead] = []
    for stream in stream_ids:
        pairs = by_stream.get(stream, [])
        view = fold_lead_view(pairs, query.account_id, at)
        if view is not None:
            leads.append(ExportLead(view, archived=False))
        elif query.include_archived:
            archived = _archived_view(pairs, query.account_id)
            if archived is not None:
                leads.append(ExportLead(archived, archived=True))
    return leads


def _archived_view(pairs: list[Pair], account_id: int) -> LeadView | None:
    """The archive's copy of a lead archived (and not live) by the end of `pairs`, as a view,
    with the times the archive row has: those its copy carries (else when it was made)."""
    state: LeadState | None = None
    entry_at = modified_at = None
    try:
        for recorded, event in pairs:
            if not isinstance(event, LeadEvent):
                return None
            state = evolve(state, event)
            if isinstance(event, LeadArchived | LeadArchiveSynced):
                entry_at = event.entry_at or recorded.recorded_at
                modified_at = event.modified_at or recorded.recorded_at
    except LeadError:
        return None
    if state is None or state.account_id != account_id or state.archive is None:
        return None
    if entry_at is None or modified_at is None:
        return None
    return LeadView(
        **msgspec.structs.asdict(state.archive.snapshot),
        lead_id=state.lead_id,
        account_id=state.account_id,
        campaign_id=state.campaign_id,
        version=state.archive.source_version,
        dedupe_keys=state.archive.dedupe_keys,
        entry_at=entry_at,
        modified_at=modified_at,
    )
