"""The set-based rebuild of `leads` and `contacts`: lead streams applied in SQL, on the server.

Most lead streams hold a LeadInserted and then LeadUpdated or LeadReassigned events. Their
final rows are a function of the events that SQL can compute without the rows ever travelling
to Python: the inserted fields, overlaid with the last new value of each changed field (by
version), the last dedupe keys, the last version and time. The contact rows then follow from
the final lead row. Streams with any other event (archive, delete, restore, ...), a LeadInserted
that is not their first event, no dedupe keys, or another schema version are left to the
Python fold (`replay.py`), which stays the definition: this path must reproduce it exactly,
and the tests hold it to that (docs/decisions.md, "Lead streams rebuilt in SQL").

The work is split by a hash of the stream id into one partition per connection, so that both
cores of the server run it; each key's rows come from one stream, so the partitions are
disjoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Final

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import (
    LEAD_EVENT_TYPES,
    SCHEMA_VERSION,
    LeadInserted,
    LeadReassigned,
    LeadUpdated,
    tag_of,
)
from lead_ledger.ledger.row_times import MODIFYING
from lead_ledger.ledger.sealing import (
    PERSONAL_FIELDS,
    inserted_secret_json,
    updated_secret_json,
)
from lead_ledger.ledger.subject_keys import unwrap
from lead_ledger.projections.base import SHADOW_SCHEMA
from lead_ledger.projections.lead_rows_sql import (
    write_leads_and_contacts_sql,
    write_leads_sql,
)
from lead_ledger.projections.rebuild.shadow import (
    OPENED_EVENTS,
    PYTHON_STREAMS,
    Progress,
    Shadow,
    in_lanes,
)

# Stored types are event tags (events.tag_of); the SQL below names these three inline.
_INSERTED: Final = tag_of(LeadInserted)
_UPDATED: Final = tag_of(LeadUpdated)
_REASSIGNED: Final = tag_of(LeadReassigned)
SQL_TYPES: Final = sorted((_INSERTED, _UPDATED, _REASSIGNED))
# The statements take a row's entry_at from its LeadInserted and its modified_at from its last
# event; that is the rule of row_times.py only while every type they apply moves modified_at.
if not {LeadInserted, LeadUpdated, LeadReassigned} <= MODIFYING:
    raise RuntimeError("set_based.py takes modified_at from events that do not move it")
PYTHON_ONLY_TYPES: Final = sorted(tag_of(t) for t in LEAD_EVENT_TYPES if tag_of(t) not in SQL_TYPES)

# Per transaction of the SQL path: room to hash the changed streams and the streams left to
# Python; UTC so that an expiry written without an offset reads the same wherever this runs;
# no wait for the WAL flush per statement (the swap's commit flushes everything before it).
SESSION_SETTINGS: Final = (
    "SET LOCAL work_mem = '256MB'",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL synchronous_commit = off",
)

# $1 fence, $2 the lead event types only Python applies, $3 SQL_TYPES, $4 the schema version.
CLASSIFY_STREAMS: Final = f"""
WITH left_to_python AS (
    INSERT INTO {PYTHON_STREAMS}
    SELECT DISTINCT stream_id FROM events
    WHERE transaction_id < $1
      AND (type = ANY($2::text[])
           OR (type = ANY($3::text[]) AND schema_version <> $4)
           OR (type = '{_INSERTED}'
               AND (stream_version <> 1 OR jsonb_array_length(data->'dedupe_keys') = 0)))
    RETURNING stream_id
)
SELECT count(*), coalesce(max(position), 0) FROM events
WHERE transaction_id < $1 AND type = ANY($3::text[])
  AND stream_id NOT IN (SELECT stream_id FROM left_to_python)
"""


_OF_PARTITION: Final = f"""transaction_id < $1
      AND abs(hashtext(stream_id) % $2) = $3
      AND stream_id NOT IN (SELECT stream_id FROM {PYTHON_STREAMS})"""
_PERSONAL: Final = "'{" + ",".join(PERSONAL_FIELDS) + "}'::text[]"
# The table, not a CTE: a CTE has no statistics, and PostgreSQL 18 joined it in a nested loop.
_OPENED: Final = f"{OPENED_EVENTS} o ON o.position = e.position AND o.lane = $3"
# $1 fence, $2 partitions, $3 this partition. The stored events hold personal data sealed;
# OPENED_EVENTS has it opened for each sealed event of the partition (`open_events`): `secret->0`
# the personal fields (a LeadInserted's: all of its fields; null when its subject is erased,
# and its clear part stands), `secret->1` the dedupe keys. An event without one (never sealed)
# is read as stored. `changed`: per stream, the last value of each changed field
# (jsonb_object_agg keeps the last of equal keys, in the ORDER BY given; a sealed update's
# personal changes come from its secret, its other changes from the clear part), the last dedupe
# keys, version and time. An update with no changes still moves the version and time, hence the
# LEFT JOIN. `final` has OFFSET 0 so that `f` is computed once per row, not once per column that
# reads it.
_FINAL_LEADS: Final = f"""
WITH inserted AS (
    SELECT e.stream_id, e.stream_version, e.data, o.secret, e.recorded_at,
           coalesce(nullif(o.secret->0, 'null'), e.data->'fields') AS fields
    FROM events e LEFT JOIN {_OPENED}
    WHERE e.type = '{_INSERTED}' AND {_OF_PARTITION}
), changed AS (
    SELECT e.stream_id, max(e.stream_version) AS version,
           (array_agg(e.recorded_at ORDER BY e.stream_version DESC))[1] AS modified_at,
           (array_agg(coalesce(o.secret->1, e.data->'dedupe_keys') ORDER BY e.stream_version DESC)
               FILTER (WHERE coalesce(o.secret->1, e.data->'dedupe_keys') <> 'null'))[1]
               AS dedupe_keys,
           jsonb_object_agg(c.field, c.value ORDER BY e.stream_version, c.n)
               FILTER (WHERE c.field IS NOT NULL) AS fields
    FROM events e
    LEFT JOIN {_OPENED}
    LEFT JOIN LATERAL (
        SELECT x.change->>0, x.change->2, x.n
        FROM jsonb_array_elements(e.data->'changes') WITH ORDINALITY AS x(change, n)
        WHERE e.type = '{_UPDATED}'
          AND (o.secret IS NULL OR x.change->>0 <> ALL({_PERSONAL}))
        UNION ALL
        SELECT p.key, p.value, 0 FROM jsonb_each(o.secret->0) AS p
        UNION ALL
        SELECT 'agent', e.data->'to_agent', 1 WHERE e.type = '{_REASSIGNED}'
    ) c(field, value, n) ON true
    WHERE e.type IN ('{_UPDATED}', '{_REASSIGNED}') AND {_OF_PARTITION}
    GROUP BY e.stream_id
), final AS (
    SELECT (i.data->>'lead_id')::bigint AS lead_id,
           (i.data->>'account_id')::bigint AS account_id,
           (i.data->>'campaign_id')::bigint AS campaign_id,
           coalesce(u.version, i.stream_version) AS version,
           coalesce(u.dedupe_keys, i.secret->1, i.data->'dedupe_keys') AS dedupe_keys,
           CASE WHEN u.fields IS NULL THEN i.fields ELSE i.fields || u.fields END AS f,
           i.recorded_at AS entry_at,
           coalesce(u.modified_at, i.recorded_at) AS modified_at
    FROM inserted i LEFT JOIN changed u USING (stream_id)
    OFFSET 0
)"""


# What `open_events` reads: the sealed events below the fence that the statements apply (the
# classification above already sent every stream they cannot apply to Python), the sealed part
# base64-decoded on the server, for an update its changes (the names of the personal ones
# are clear) and whether it carries dedupe keys, and its subject's wrapped key (null once
# erased): the keys travel with their events, so the rebuild holds one batch's keys at a time
# however many subjects the ledger has (a dict of every key took 3.3 GB at 10,000,000 leads).
# The key is a subquery, one primary-key lookup per event, so it is never a join that hashes
# the whole key table for each batch. $1 after, $2 fence, $3 SQL_TYPES, $4 how many positions,
# $5 partitions. A range of positions rather than LIMIT: the planner cannot estimate how many
# rows the filters keep, and for a LIMIT it chose to sort the whole log on every read.
SELECT_TO_OPEN: Final = f"""
SELECT e.position, abs(hashtext(e.stream_id) % $5), e.type, e.data->'sealed'->>0,
       decode(e.data->'sealed'->>1, 'base64'),
       CASE WHEN e.type = '{_UPDATED}' THEN e.data->'changes' END,
       coalesce(e.data->'dedupe_keys', 'null') <> 'null',
       (SELECT k.wrapped_key FROM subject_keys k WHERE k.subject_id = e.data->'sealed'->>0)
FROM events e
WHERE e.position > $1 AND e.position <= $1 + $4 AND e.transaction_id < $2
  AND e.type = ANY($3::text[]) AND jsonb_typeof(e.data->'sealed') = 'array'
  AND e.stream_id NOT IN (SELECT stream_id FROM {PYTHON_STREAMS})
"""
OPENED_COLUMNS: Final = ["position", "lane", "secret"]

INSERT_LEADS: Final = _FINAL_LEADS + write_leads_sql(SHADOW_SCHEMA)
INSERT_LEADS_AND_CONTACTS: Final = write_leads_and_contacts_sql(_FINAL_LEADS, SHADOW_SCHEMA)


def applies(shadow: Shadow) -> bool:
    """The path builds `leads` (and `contacts` from it); without `leads` it has no rows to
    derive contacts from, and the Python fold does everything."""
    return any(p.name == "leads" for p in shadow.projections)


async def open_events(
    conns: Sequence[Connection], fence: int, last: int, master_key: bytes, batch: int
) -> None:
    """Copy the personal part of every sealed event the statements apply, up to position
    `last`, into OPENED_EVENTS, opened: reads of `batch` positions on the first connection,
    each batch opened with the subjects' keys and COPYed on the last connection. With two
    connections the server reads the next batch and copies the last one while this process
    opens."""
    reader, writer = conns[0], conns[-1]
    if reader is writer:
        for after in range(0, last, batch):
            records = await reader.fetch(SELECT_TO_OPEN, after, fence, SQL_TYPES, batch, 1)
            await _copy_opened(writer, _opened_rows(records, master_key))
        await writer.execute(f"ANALYZE {OPENED_EVENTS}")
        return

    def read(after: int) -> asyncio.Future[list[asyncpg.Record]]:
        return asyncio.ensure_future(
            reader.fetch(SELECT_TO_OPEN, after, fence, SQL_TYPES, batch, len(conns))
        )

    reading = read(0) if last > 0 else None
    copying: asyncio.Future[None] | None = None
    after = 0
    try:
        while reading is not None:
            records = await reading
            after += batch
            reading = read(after) if after < last else None
            await asyncio.sleep(0)  # the next read goes out before this process opens
            rows = _opened_rows(records, master_key)
            if copying is not None:
                await copying
            copying = asyncio.ensure_future(_copy_opened(writer, rows))
        if copying is not None:
            await copying
    finally:
        # On an error, the connections are free again before it propagates; a read or copy
        # that failed too (both connections lost) has its error taken here, not left for the
        # loop to print as never retrieved.
        for pending in (reading, copying):
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
    await writer.execute(f"ANALYZE {OPENED_EVENTS}")


def _opened_rows(
    records: Sequence[asyncpg.Record], master_key: bytes
) -> list[tuple[int, int, bytes]]:
    # A LeadInserted's plaintext is already the shape the statements read: a decrypt, no decode.
    rows = []
    for position, lane, kind, subject, data, changes, keyed, wrapped in records:
        key = None if wrapped is None else unwrap(master_key, wrapped)
        secret = (
            inserted_secret_json(key, subject, data)
            if kind == _INSERTED
            else updated_secret_json(key, subject, data, changes, has_dedupe_keys=keyed)
        )
        rows.append((position, lane, secret))
    return rows


async def _copy_opened(conn: Connection, rows: list[tuple[int, int, bytes]]) -> None:
    await conn.copy_records_to_table(
        "opened_events", schema_name=SHADOW_SCHEMA, records=rows, columns=OPENED_COLUMNS
    )


async def apply_set_based(
    conns: Sequence[Connection],
    shadow: Shadow,
    fence: int,
    master_key: bytes,
    progress: Progress | None = None,
    batch: int = 20_000,
) -> list[str]:
    """Apply every lead stream it can below the fence; return the event types it applied
    (empty when it did not run), which the Python fold then reads only for the other streams.

    Progress is reported as phase "sql": nothing done when the statements start, then a
    partition's share of the events as each one finishes (PostgreSQL reports no progress of an
    INSERT ... SELECT, so this is as fine as it gets without more, costlier, statements).
    """
    if not applies(shadow):
        return []
    report = shadow.report
    classified = await conns[0].fetchrow(
        CLASSIFY_STREAMS, fence, PYTHON_ONLY_TYPES, SQL_TYPES, SCHEMA_VERSION
    )
    events, position = classified if classified is not None else (0, 0)
    t0 = time.perf_counter()
    await open_events(conns, fence, position, master_key, batch)
    report.timings["open"] = time.perf_counter() - t0
    report.events += events
    report.events_in_sql = events
    report.position = max(report.position, position)
    lanes = len(conns)
    with_contacts = any(p.name == "contacts" for p in shadow.projections)
    counts: dict[str, int] = {}
    finished = 0
    if progress:
        progress("sql", 0, events)

    async def run(conn: Connection, partition: int) -> None:
        nonlocal finished
        async with conn.transaction():
            for setting in SESSION_SETTINGS:
                await conn.execute(setting)
            if with_contacts:
                written = await conn.fetchrow(INSERT_LEADS_AND_CONTACTS, fence, lanes, partition)
                leads, contacts = written if written is not None else (0, 0)
                _add(counts, "leads", leads)
                _add(counts, "contacts", contacts)
            else:
                status = await conn.execute(INSERT_LEADS, fence, lanes, partition)
                _add(counts, "leads", int(status.rsplit(" ", 1)[-1]))
        finished += 1
        if progress:
            progress("sql", events * finished // lanes, events)

    await in_lanes([run(c, i) for i, c in enumerate(conns)])
    for table, count in counts.items():
        report.rows[table] = report.rows.get(table, 0) + count
    return list(SQL_TYPES)


def _add(counts: dict[str, int], table: str, count: int) -> None:
    counts[table] = counts.get(table, 0) + count
