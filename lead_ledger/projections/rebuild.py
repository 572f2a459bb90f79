"""Rebuild projections from the log while the service runs; verify them; report their status.

A rebuild never touches a live table until its last, short transaction:

1. Shadow tables `ledger_shadow.<table>` are created like the live ones, without indexes.
2. Bulk: every event of a transaction finished before the rebuild began (below the fence F, the
   oldest transaction then running) is read in keyset batches in position order, decoded and
   folded in memory, then COPYed out; indexes and constraints are built after, with the live
   names. Position order is stream order: an append only claims version n+1 after version n
   committed, so it gets a higher position.
3. Catch-up: events of transactions from F on are read like the global feed ((xid, position)
   order, below the visibility fence). Feed order is not stream order (a transaction that got
   its xid early can append to a stream after a younger one did), so each touched stream is
   refolded whole, in version order, with the projections' own fold and write, and its keys'
   rows replaced. That is idempotent, so re-reading a stream is always safe.
4. Swap, in one transaction: close the write gate (no writer mid-transaction), lock `events`
   against ungated inserts, catch up the rest (no fence needed: nothing can be in flight), move
   each live table to a fresh per-rebuild schema, move the shadow table to `public`, drop the
   old one, record the checkpoint. A lock timeout makes a blocked swap give up and retry rather
   than queue every reader behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import SCHEMA_VERSION, DomainEvent, decode_event
from lead_ledger.projections.base import SHADOW_SCHEMA, Pair, Projection, Row, Rows
from lead_ledger.projections.gate import REBUILD_LOCK_KEY, close_write_gate
from lead_ledger.projections.registry import BY_NAME, PROJECTIONS

Progress = Callable[[str, int, int], None]  # (phase, done, total)
BATCH_SIZE: Final = 20_000
TABLE_LOCK_TIMEOUT_MS: Final = 500

SELECT_FENCE: Final = "SELECT pg_snapshot_xmin(pg_current_snapshot())"
COUNT_BULK: Final = "SELECT count(*) FROM events WHERE transaction_id < $1 AND type = ANY($2)"
_EVENT_COLUMNS: Final = (
    "position, stream_id, stream_version, type, schema_version, data, recorded_at, transaction_id"
)
SELECT_BULK: Final = f"""
SELECT {_EVENT_COLUMNS}
FROM events
WHERE position > $1 AND transaction_id < $2 AND type = ANY($3::text[])
ORDER BY position
LIMIT $4
"""
# The feed from (xid, position) on; `$3` drops the visibility fence, for the final catch-up
# under the write gate and the events lock, when no writer can be in flight.
SELECT_CATCH_UP: Final = """
SELECT position, stream_id, transaction_id
FROM events
WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
  AND ($3::boolean OR transaction_id < pg_snapshot_xmin(pg_current_snapshot()))
  AND type = ANY($4::text[])
ORDER BY transaction_id, position
LIMIT $5
"""
SELECT_STREAMS: Final = f"""
SELECT {_EVENT_COLUMNS}
FROM events
WHERE stream_id = ANY($1::text[]) AND type = ANY($2::text[])
ORDER BY stream_id, stream_version
"""
SELECT_HEAD: Final = "SELECT coalesce(max(position), 0) FROM events"
# Primary keys, unique and exclusion constraints, then indexes that back no constraint.
SELECT_CONSTRAINTS: Final = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname
"""
SELECT_INDEXES: Final = """
SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x
WHERE x.indrelid = $1::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
ORDER BY x.indexrelid
"""
UPSERT_CHECKPOINT: Final = """
INSERT INTO projection_checkpoints (name, position, rows, rebuilt_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (name) DO UPDATE
SET position = excluded.position, rows = excluded.rows, rebuilt_at = excluded.rebuilt_at
"""
TRY_REBUILD_LOCK: Final = "SELECT pg_try_advisory_lock($1)"
UNLOCK_REBUILD: Final = "SELECT pg_advisory_unlock($1)"

_LIST_DECODER: Final = msgspec.json.Decoder(list[DomainEvent])
_JSON: Final = msgspec.json.Encoder()
_NIL: Final = uuid.UUID(int=0)


class RebuildError(RuntimeError):
    """A rebuild or verify could not run (unknown name, another one running, swap blocked)."""


@dataclass(slots=True)
class RebuildReport:
    names: list[str]
    events: int = 0  # folded in bulk
    caught_up: int = 0  # events read by the catch-up passes
    position: int = 0  # the highest position folded; after a swap, the head it reflects
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return (self.events + self.caught_up) / self.seconds if self.seconds else 0.0


def select_projections(names: Sequence[str] | None) -> list[Projection]:
    if not names:
        return list(PROJECTIONS)
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        known = ", ".join(BY_NAME)
        raise RebuildError(f"unknown projection(s): {', '.join(unknown)} (known: {known})")
    return [p for p in PROJECTIONS if p.name in names]  # registry order, each once


def handled_types(projections: Sequence[Projection]) -> list[str]:
    # Event type names are the Struct class names (encode_event), so the read can skip the rest.
    return sorted({cls.__name__ for p in projections for cls in p.handles})


@contextlib.asynccontextmanager
async def connection(pool_or_conn: asyncpg.Pool | Connection) -> AsyncIterator[Connection]:
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            yield conn
    else:
        yield pool_or_conn


@contextlib.asynccontextmanager
async def connections(
    pool_or_conn: asyncpg.Pool | Connection, count: int = 2
) -> AsyncIterator[list[Connection]]:
    """Up to `count` connections: a pool lends several (for parallel COPY lanes), a connection
    is the only one."""
    if not isinstance(pool_or_conn, asyncpg.Pool):
        yield [pool_or_conn]
        return
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(pool_or_conn.acquire()) for _ in range(count)]


@contextlib.asynccontextmanager
async def rebuild_lock(conn: Connection) -> AsyncIterator[None]:
    """One rebuild or verify at a time: they share the shadow tables."""
    if not await conn.fetchval(TRY_REBUILD_LOCK, REBUILD_LOCK_KEY):
        raise RebuildError("another projection rebuild or verify is running")
    try:
        yield
    finally:
        await conn.execute(UNLOCK_REBUILD, REBUILD_LOCK_KEY)


def decode_records(records: Sequence[asyncpg.Record]) -> list[Pair]:
    """Pairs for folding, built for speed: one msgspec call per batch, not one per event.

    Folds read only the envelope's position, stream, version, type and time, so the event id and
    metadata are not fetched and the body is not kept. Events of another schema version go through
    `decode_event`, where upcasters live.
    """
    if all(r[4] == SCHEMA_VERSION for r in records):
        events: list[DomainEvent] = _LIST_DECODER.decode(
            b"[" + b",".join(r[5] for r in records) + b"]"
        )
    else:
        events = [decode_event(_recorded(r, r[5])) for r in records]
    return [(_recorded(r, b""), e) for r, e in zip(records, events, strict=True)]


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


async def create_shadow(conn: Connection, projection: Projection) -> None:
    """An empty copy of the live table (columns, defaults, checks), dropping a stale one."""
    table = projection.table
    await conn.execute(f"DROP TABLE IF EXISTS {SHADOW_SCHEMA}.{table}")
    await conn.execute(
        f"CREATE TABLE {SHADOW_SCHEMA}.{table} "
        f"(LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES)"
    )


async def drop_shadow(conn: Connection, projections: Sequence[Projection]) -> None:
    for p in projections:
        await conn.execute(f"DROP TABLE IF EXISTS {SHADOW_SCHEMA}.{p.table}")


async def index_shadow(conn: Connection, projection: Projection) -> None:
    """The live table's constraints and indexes, with the live names, built after the COPY
    (a sort per index instead of one insert per row). Names are per schema, so they do not
    clash with the live ones, and after the swap they are exactly the live names again."""
    table = projection.table
    live, shadow = f"public.{table}", f"{SHADOW_SCHEMA}.{table}"
    for name, definition in await conn.fetch(SELECT_CONSTRAINTS, live):
        await conn.execute(f'ALTER TABLE {shadow} ADD CONSTRAINT "{name}" {definition}')
    for (definition,) in await conn.fetch(SELECT_INDEXES, live):
        target = f" ON {live} "
        if definition.count(target) != 1:
            raise RebuildError(f"cannot retarget index definition: {definition}")
        await conn.execute(definition.replace(target, f" ON {shadow} "))
    await conn.execute(f"ANALYZE {shadow}")


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


@dataclass(slots=True)
class Shadow:
    """Shadow tables being built, and where the catch-up resumes in the feed."""

    projections: list[Projection]
    types: list[str]
    report: RebuildReport
    cursor: tuple[int, int] = (0, 0)  # (transaction_id, position)

    def save(self) -> tuple[tuple[int, int], int, int, dict[str, int]]:
        r = self.report
        return self.cursor, r.caught_up, r.position, dict(r.rows)

    def restore(self, saved: tuple[tuple[int, int], int, int, dict[str, int]]) -> None:
        r = self.report
        self.cursor, r.caught_up, r.position, r.rows = saved


async def build_shadow(
    conns: Sequence[Connection],
    projections: list[Projection],
    progress: Progress | None,
    batch: int,
) -> Shadow:
    """Steps 1-3: shadow tables holding every committed event but the last few."""
    conn = conns[0]
    report = RebuildReport(names=[p.name for p in projections])
    shadow = Shadow(projections, handled_types(projections), report)
    fence: int = await conn.fetchval(SELECT_FENCE)
    for p in projections:
        await create_shadow(conn, p)
    total = await conn.fetchval(COUNT_BULK, fence, shadow.types) if progress else 0

    with gc_paused():
        rows = await fold_log(conn, shadow, fence, progress, batch, total)
        t0 = time.perf_counter()
        await copy_and_index(conns, shadow, rows, progress)
        report.timings["copy+index"] = time.perf_counter() - t0

    # Everything below the fence is folded; the feed resumes at the fence's first transaction.
    shadow.cursor = (fence, 0)
    t0 = time.perf_counter()
    while await catch_up(conn, shadow, final=False, batch=batch) >= batch:
        pass
    report.timings["catch-up"] = time.perf_counter() - t0
    return shadow


async def fold_log(
    conn: Connection, shadow: Shadow, fence: int, progress: Progress | None, batch: int, total: int
) -> dict[str, Rows]:
    """Step 2: read below the fence in position order and fold in memory."""
    report, projections = shadow.report, shadow.projections
    rows = {p.name: Rows() for p in projections}
    t_read = t_fold = 0.0
    t0 = time.perf_counter()
    pending: asyncio.Future[list[asyncpg.Record]] | None = asyncio.ensure_future(
        conn.fetch(SELECT_BULK, 0, fence, shadow.types, batch)
    )
    try:
        while pending is not None:
            records = await pending
            pending = None
            if len(records) == batch:
                # Send the next read before folding this batch: the server runs it meanwhile.
                pending = asyncio.ensure_future(
                    conn.fetch(SELECT_BULK, records[-1][0], fence, shadow.types, batch)
                )
                await asyncio.sleep(0)
            pairs = decode_records(records)
            t1 = time.perf_counter()
            fold_batch(projections, rows, pairs)
            t_read, t_fold = t_read + t1 - t0, t_fold + time.perf_counter() - t1
            t0 = time.perf_counter()
            report.events += len(records)
            if records:
                report.position = records[-1][0]
            if progress:
                progress("read", report.events, total)
    finally:
        if pending is not None:  # interrupted: the connection must be idle for the clean-up
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncpg.PostgresError):
                await pending
    report.timings["read+decode"], report.timings["fold"] = t_read, t_fold
    return rows


async def copy_and_index(
    conns: Sequence[Connection], shadow: Shadow, rows: dict[str, Rows], progress: Progress | None
) -> None:
    """COPY each table and build its indexes, in lanes of one connection each: while Python
    encodes one table's rows, the server stores another's or builds its indexes."""
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
            shadow.report.rows[p.name] = await copy_rows(conn, p, rows.pop(p.name), SHADOW_SCHEMA)
            await index_shadow(conn, p)
            done += 1
            if progress:
                progress("copy", done, len(shadow.projections))

    # A TaskGroup: if one lane fails, the other is cancelled and waited for before the
    # connections go back to the pool.
    async with asyncio.TaskGroup() as group:
        for c, lane in zip(conns, lanes, strict=True):
            group.create_task(run_lane(c, lane))


async def catch_up(conn: Connection, shadow: Shadow, *, final: bool, batch: int) -> int:
    """Step 3 for one feed batch: refold the streams it touches into the shadow tables."""
    async with contextlib.AsyncExitStack() as stack:
        if not conn.is_in_transaction():
            await stack.enter_async_context(conn.transaction())
        xid, position = shadow.cursor
        feed = await conn.fetch(SELECT_CATCH_UP, xid, position, final, shadow.types, batch)
        if not feed:
            return 0
        shadow.cursor = (feed[-1]["transaction_id"], feed[-1]["position"])
        shadow.report.caught_up += len(feed)
        shadow.report.position = max(shadow.report.position, *(r["position"] for r in feed))
        streams = sorted({r["stream_id"] for r in feed})
        pairs = decode_records(await conn.fetch(SELECT_STREAMS, streams, shadow.types))
        # Unqualified table names in the projections' SQL now mean the shadow tables; `events`
        # still resolves to public.events. LOCAL: reset at the end of this transaction.
        await conn.execute(f"SET LOCAL search_path = {SHADOW_SCHEMA}, public")
        for p in shadow.projections:
            relevant = [(r, e) for r, e in pairs if type(e) in p.handles]
            if relevant:
                refolded = Rows()
                p.fold_all(refolded, relevant)
                keys = {p.key_of(e)[0] for _, e in relevant}
                # Row counts follow along, so the swap need not count whole tables.
                before: int = await conn.fetchval(
                    f"SELECT count(*) FROM {p.table} WHERE {p.key} = ANY($1::bigint[])", list(keys)
                )
                await p.write(conn, refolded, delete_keys=keys)
                after = sum(map(len, refolded.groups.values()))
                shadow.report.rows[p.name] = shadow.report.rows.get(p.name, 0) + after - before
        await conn.execute("SET LOCAL search_path = public")
        return len(feed)
    return 0  # pragma: no cover - the context manager above always returns


@contextlib.asynccontextmanager
async def gate_closed(
    conn: Connection, shadow: Shadow, lock_timeout_ms: int
) -> AsyncIterator[None]:
    """A transaction in which no writer is in flight and the shadow tables are fully caught up."""
    async with conn.transaction():
        # A swap waiting for a lock makes every later writer or reader wait behind it: give up
        # soon instead, and let the caller retry.
        await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        await close_write_gate(conn)
        # Shorter for the tables than PostgreSQL's deadlock_timeout (1 s): a writer that read a
        # projection before entering the gate waits for us while we wait for its table lock;
        # the swap should be the one to give up, not the writer's request.
        table_timeout = min(lock_timeout_ms, TABLE_LOCK_TIMEOUT_MS)
        await conn.execute(f"SET LOCAL lock_timeout = {int(table_timeout)}")
        # Writers that skip the gate: SHARE waits for every transaction that inserted events
        # and holds new inserts until commit, so the unfenced read below misses nothing.
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        while await catch_up(conn, shadow, final=True, batch=BATCH_SIZE) >= BATCH_SIZE:
            pass
        yield


async def swap(conn: Connection, shadow: Shadow, *, lock_timeout_ms: int, attempts: int) -> None:
    """Step 4, retried when a lock is not granted within the timeout."""
    for attempt in range(1, attempts + 1):
        saved = shadow.save()
        try:
            async with gate_closed(conn, shadow, lock_timeout_ms):
                # Nothing can commit now: the tables reflect the log up to its head, including
                # events of types these projections ignore. That is the checkpoint.
                shadow.report.position = await conn.fetchval(SELECT_HEAD)
                old = f"ledger_old_{secrets.token_hex(4)}"
                await conn.execute(f"CREATE SCHEMA {old}")
                for p in shadow.projections:
                    await conn.execute(f"ALTER TABLE public.{p.table} SET SCHEMA {old}")
                    await conn.execute(f"ALTER TABLE {SHADOW_SCHEMA}.{p.table} SET SCHEMA public")
                    # No CASCADE: if something depends on the old table, fail and roll back.
                    await conn.execute(f"DROP TABLE {old}.{p.table}")
                    rows = shadow.report.rows[p.name]
                    await conn.execute(UPSERT_CHECKPOINT, p.name, shadow.report.position, rows)
                await conn.execute(f"DROP SCHEMA {old}")
        except asyncpg.LockNotAvailableError:
            # The attempt's catch-up was rolled back with it: so must its progress be.
            shadow.restore(saved)
            if attempt == attempts:
                raise RebuildError(
                    f"swap gave up after {attempts} attempts: a lock was not granted within "
                    f"{lock_timeout_ms} ms (long transactions on the projection tables?)"
                ) from None
        else:
            return


async def rebuild(
    pool_or_conn: asyncpg.Pool | Connection,
    names: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
    batch: int = BATCH_SIZE,
    lock_timeout_ms: int = 2_000,
    attempts: int = 5,
) -> RebuildReport:
    """Replay the log into shadow tables and swap them in; the live tables serve meanwhile."""
    projections = select_projections(names)
    started = time.perf_counter()
    async with connections(pool_or_conn) as conns, rebuild_lock(conns[0]):
        conn = conns[0]
        try:
            shadow = await build_shadow(conns, projections, progress, batch)
            t0 = time.perf_counter()
            if progress:
                progress("swap", 0, 1)
            await swap(conn, shadow, lock_timeout_ms=lock_timeout_ms, attempts=attempts)
            shadow.report.timings["swap"] = time.perf_counter() - t0
        finally:
            # Interrupted or failed: leave no half-built shadow behind (a rerun drops it too).
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await drop_shadow(conn, projections)
    shadow.report.seconds = time.perf_counter() - started
    return shadow.report


# --- verify -------------------------------------------------------------------------------------

MAX_DIFFERENCES: Final = 20


@dataclass(frozen=True, slots=True)
class Difference:
    key: int
    side: str  # "live" or "rebuilt": the side that has this row and the other lacks
    digest: str  # md5 of the row's text


@dataclass(frozen=True, slots=True)
class TableCheck:
    name: str
    table: str
    only_live: int
    only_rebuilt: int
    differences: list[Difference]  # the first MAX_DIFFERENCES, by key

    @property
    def ok(self) -> bool:
        return self.only_live == 0 and self.only_rebuilt == 0


@dataclass(frozen=True, slots=True)
class VerifyReport:
    tables: list[TableCheck]
    events: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)


def compare_sql(projection: Projection) -> str:
    """Both tables as multisets of (key, md5(row text)), EXCEPT ALL each way; `$1` limits the
    keys (NULL: all). Columns are in the same order on both sides (the shadow is LIKE live)."""
    key, table = projection.key, projection.table
    keys = f"($1::bigint[] IS NULL OR {key} = ANY($1::bigint[]))"
    return f"""
WITH live AS (SELECT {key} AS key, md5(t::text) AS digest FROM public.{table} t WHERE {keys}),
     rebuilt AS (SELECT {key} AS key, md5(t::text) AS digest
                 FROM {SHADOW_SCHEMA}.{table} t WHERE {keys}),
     only_live AS (SELECT * FROM live EXCEPT ALL SELECT * FROM rebuilt),
     only_rebuilt AS (SELECT * FROM rebuilt EXCEPT ALL SELECT * FROM live)
SELECT side, key, digest, total FROM (
    SELECT 'live' AS side, key, digest, count(*) OVER () AS total,
           row_number() OVER (ORDER BY key, digest) AS n
    FROM only_live
    UNION ALL
    SELECT 'rebuilt', key, digest, count(*) OVER (), row_number() OVER (ORDER BY key, digest)
    FROM only_rebuilt
) d
WHERE n <= {MAX_DIFFERENCES}
ORDER BY key, side, digest
"""


async def compare(conn: Connection, projection: Projection, keys: list[int] | None) -> TableCheck:
    records = await conn.fetch(compare_sql(projection), keys)
    totals = {r["side"]: r["total"] for r in records}
    return TableCheck(
        name=projection.name,
        table=projection.table,
        only_live=totals.get("live", 0),
        only_rebuilt=totals.get("rebuilt", 0),
        differences=[Difference(r["key"], r["side"], r["digest"]) for r in records][
            :MAX_DIFFERENCES
        ],
    )


async def verify(
    pool_or_conn: asyncpg.Pool | Connection,
    names: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
    batch: int = BATCH_SIZE,
    lock_timeout_ms: int = 2_000,
) -> VerifyReport:
    """Rebuild into shadow tables (never swapped), compare them with the live ones, drop them."""
    projections = select_projections(names)
    started = time.perf_counter()
    async with connections(pool_or_conn) as conns, rebuild_lock(conns[0]):
        conn = conns[0]
        try:
            shadow = await build_shadow(conns, projections, progress, batch)
            # Without holding writers: a write between the catch-up and the compare shows as a
            # difference, so any difference is checked again below with writers held out.
            checks = [await compare(conn, p, None) for p in projections]
            if not all(c.ok for c in checks):
                try:
                    async with gate_closed(conn, shadow, lock_timeout_ms):
                        checks = [
                            c if c.ok else await compare(conn, p, await _differing_keys(conn, p))
                            for p, c in zip(projections, checks, strict=True)
                        ]
                except asyncpg.LockNotAvailableError:
                    raise RebuildError("verify could not hold writers out to re-check") from None
        finally:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await drop_shadow(conn, projections)
    report = shadow.report
    return VerifyReport(checks, report.events + report.caught_up, time.perf_counter() - started)


async def _differing_keys(conn: Connection, projection: Projection) -> list[int]:
    # Every differing key, not only the first MAX_DIFFERENCES: a plain EXCEPT ALL on keys.
    sql = compare_sql(projection).replace(f"WHERE n <= {MAX_DIFFERENCES}", "WHERE true")
    return sorted({r["key"] for r in await conn.fetch(sql, None)})


# --- status -------------------------------------------------------------------------------------

SELECT_CHECKPOINTS: Final = "SELECT name, position, rows, rebuilt_at FROM projection_checkpoints"
SELECT_REBUILDING: Final = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
    WHERE l.locktype = 'advisory' AND d.datname = current_database()
      AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1
)
"""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    table: str
    rows: int
    checkpoint_position: int | None  # the log head the last rebuild's tables reflected
    rebuilt_at: datetime | None
    head: int  # the highest position in the log
    # Inline projections commit with their events, so the live tables are never behind: 0.
    lag: int
    rebuilding: bool  # a rebuild or verify holds the rebuild lock right now


async def status(pool_or_conn: asyncpg.Pool | Connection) -> list[ProjectionStatus]:
    async with connection(pool_or_conn) as conn:
        head: int = await conn.fetchval(SELECT_HEAD)
        checkpoints = {r["name"]: r for r in await conn.fetch(SELECT_CHECKPOINTS)}
        rebuilding: bool = await conn.fetchval(
            SELECT_REBUILDING, REBUILD_LOCK_KEY >> 32, REBUILD_LOCK_KEY & 0xFFFF_FFFF
        )
        result = []
        for p in PROJECTIONS:
            rows: int = await conn.fetchval(f"SELECT count(*) FROM public.{p.table}")
            checkpoint = checkpoints.get(p.name)
            result.append(
                ProjectionStatus(
                    name=p.name,
                    table=p.table,
                    rows=rows,
                    checkpoint_position=checkpoint["position"] if checkpoint else None,
                    rebuilt_at=checkpoint["rebuilt_at"] if checkpoint else None,
                    head=head,
                    lag=0,
                    rebuilding=rebuilding,
                )
            )
        return result
