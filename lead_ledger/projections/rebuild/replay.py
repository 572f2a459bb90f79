"""The Python replay: keyset reads of the log, the projections' own fold in memory, then COPY.

Every event the set-based SQL path (`set_based.py`) does not apply comes through here: the
configuration and job streams, and every lead stream with an event that path leaves alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import SCHEMA_VERSION, DomainEvent, decode_event
from lead_ledger.ledger.opening import keys_for
from lead_ledger.ledger.sealing import open_event, sealed_subjects
from lead_ledger.projections.base import SHADOW_SCHEMA, Pair, Projection, Row, Rows
from lead_ledger.projections.rebuild.shadow import PYTHON_STREAMS, Progress, Shadow, in_lanes

EVENT_COLUMNS: Final = (
    "position, stream_id, stream_version, type, schema_version, data, recorded_at, transaction_id"
)


def _left_to_python(sql_types: str) -> str:
    """`sql_types` names the parameter with the event types the SQL path applies: of those,
    only events of streams it left to Python are read here (an empty array: every event)."""
    streams = f"SELECT stream_id FROM {PYTHON_STREAMS}"
    return f"NOT (type = ANY({sql_types}::text[]) AND stream_id NOT IN ({streams}))"


COUNT_BULK: Final = f"""
SELECT count(*) FROM events
WHERE transaction_id < $1 AND type = ANY($2::text[]) AND {_left_to_python("$3")}
"""
SELECT_BULK: Final = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE position > $1 AND transaction_id < $2 AND type = ANY($3::text[])
  AND {_left_to_python("$4")}
ORDER BY position
LIMIT $5
"""
SELECT_STREAMS: Final = f"""
SELECT {EVENT_COLUMNS}
FROM events
WHERE stream_id = ANY($1::text[]) AND type = ANY($2::text[])
ORDER BY stream_id, stream_version
"""

_LIST_DECODER: Final = msgspec.json.Decoder(list[DomainEvent])
_JSON: Final = msgspec.json.Encoder()
_NIL: Final = uuid.UUID(int=0)


async def opened_pairs(conn: Connection, records: Sequence[asyncpg.Record]) -> list[Pair]:
    """Pairs for folding, built for speed: one msgspec call per batch, not one per event; each
    event opened with its subjects' keys, read for this batch only (an erased subject's reads
    as erased), so a rebuild holds the keys of one batch at a time, whatever the log's size.

    Folds read only the envelope's position, stream, version, type and time, so the event id and
    metadata are not fetched and the body is not kept. Events of another schema version go through
    `decode_event`, where upcasters live.
    """
    events = decoded_records(records)
    keys = await keys_for(conn, (s for e in events for s in sealed_subjects(e)))
    return [(_recorded(r, b""), open_event(e, keys)) for r, e in zip(records, events, strict=True)]


def decoded_records(records: Sequence[asyncpg.Record]) -> list[DomainEvent]:
    """The records' events, decoded in one msgspec call, still sealed."""
    if all(r[4] == SCHEMA_VERSION for r in records):
        events: list[DomainEvent] = _LIST_DECODER.decode(
            b"[" + b",".join(r[5] for r in records) + b"]"
        )
        return events
    return [decode_event(_recorded(r, r[5])) for r in records]


def _recorded(r: asyncpg.Record, data: bytes) -> RecordedEvent:
    return RecordedEvent(
        position=r[0],
        event_id=_NIL,
        stream_id=r[1],
        stream_version=r[2],
        type=r[3],
        schema_version=r[4],
        data=data,
        metadata=b"{}",
        recorded_at=r[6],
        transaction_id=r[7],
    )


def fold_batch(projections: Sequence[Projection], rows: dict[str, Rows], pairs: list[Pair]) -> None:
    """`fold_all` for every projection in one pass: each still sees its events in order."""
    by_type: dict[type, list[tuple[Projection, Rows]]] = {}
    for p in projections:
        for cls in p.handles:
            by_type.setdefault(cls, []).append((p, rows[p.name]))
    for recorded, event in pairs:
        for projection, target in by_type.get(type(event), ()):
            projection.fold(target, recorded, event)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while millions of row dicts are alive: a full collection walks all of them,
    again and again as allocations go on, and took more time than the fold itself. The fold
    makes no reference cycles, so nothing is left for the collector to find afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def count_left_to_python(conn: Connection, shadow: Shadow, fence: int, sql: list[str]) -> int:
    total: int = await conn.fetchval(COUNT_BULK, fence, shadow.types, sql)
    return total


async def fold_log(
    conn: Connection,
    shadow: Shadow,
    fence: int,
    sql_types: list[str],
    batch: int,
    key_conn: Connection,
    progress: Callable[[], None] | None,
) -> dict[str, Rows]:
    """Read below the fence in position order (what the SQL path left) and fold in memory.
    The keys of each batch are read on `key_conn` while the next batch is read on `conn`; with
    one connection for both, the next read waits for the keys."""
    report, projections = shadow.report, shadow.projections
    rows = {p.name: Rows() for p in projections}
    t_read = t_fold = 0.0
    t0 = time.perf_counter()
    args = (fence, shadow.types, sql_types, batch)

    def read_after(position: int) -> asyncio.Future[list[asyncpg.Record]]:
        return asyncio.ensure_future(conn.fetch(SELECT_BULK, position, *args))

    pending: asyncio.Future[list[asyncpg.Record]] | None = read_after(0)
    try:
        while pending is not None:
            records = await pending
            pending = None
            more = len(records) == batch
            if more and key_conn is not conn:
                # Send the next read before folding this batch: the server runs it meanwhile.
                pending = read_after(records[-1][0])
                await asyncio.sleep(0)
            pairs = await opened_pairs(key_conn, records)
            if more and pending is None:  # one connection: the keys were read first
                pending = read_after(records[-1][0])
            t1 = time.perf_counter()
            fold_batch(projections, rows, pairs)
            t_read, t_fold = t_read + t1 - t0, t_fold + time.perf_counter() - t1
            t0 = time.perf_counter()
            report.events += len(records)
            if records:
                report.position = max(report.position, records[-1][0])
            if progress:
                progress()
    finally:
        if pending is not None:  # interrupted: the connection must be idle for the clean-up
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncpg.PostgresError):
                await pending
    report.timings["read+decode"], report.timings["fold"] = t_read, t_fold
    return rows


async def copy_rows(conn: Connection, projection: Projection, rows: Rows, schema: str) -> int:
    """`copy_all`, faster: jsonb columns last so a C itemgetter builds the rest of each record."""
    plain = [c for c in projection.columns if c not in projection.jsonb_columns]
    json_columns = [c for c in projection.columns if c in projection.jsonb_columns]
    get = _getter(plain)
    if json_columns:
        get_json = _getter(json_columns)
        encode = _JSON.encode
        records = [get(r) + tuple(map(encode, get_json(r))) for r in rows.all_rows()]
    else:
        records = [get(r) for r in rows.all_rows()]
    if records:
        await conn.copy_records_to_table(
            projection.table, schema_name=schema, records=records, columns=plain + json_columns
        )
    return len(records)


def _getter(columns: list[str]) -> Callable[[Row], tuple[Any, ...]]:
    if len(columns) == 1:  # itemgetter of one key returns the value, not a 1-tuple
        name = columns[0]
        return lambda row: (row[name],)
    return itemgetter(*columns)


async def copy_folded(
    conns: Sequence[Connection], shadow: Shadow, rows: dict[str, Rows], progress: Progress | None
) -> None:
    """COPY each folded table, in lanes of one connection each, biggest tables spread first."""
    sizes = {name: sum(map(len, r.groups.values())) for name, r in rows.items()}
    lanes: list[list[Projection]] = [[] for _ in conns]
    load = [0] * len(conns)
    for p in sorted(shadow.projections, key=lambda p: -sizes[p.name]):
        lightest = load.index(min(load))
        lanes[lightest].append(p)
        load[lightest] += sizes[p.name]
    done = 0

    async def run_lane(conn: Connection, lane: list[Projection]) -> None:
        nonlocal done
        for p in lane:
            copied = await copy_rows(conn, p, rows.pop(p.name), SHADOW_SCHEMA)
            shadow.report.rows[p.name] = shadow.report.rows.get(p.name, 0) + copied
            done += 1
            if progress:
                progress("copy", done, len(shadow.projections))

    await in_lanes([run_lane(c, lane) for c, lane in zip(conns, lanes, strict=True)])
