"""Shadow tables: what a rebuild or verify builds beside the live tables, and the state it keeps.

`ledger_shadow.<table>` is created like the live table (columns, defaults, checks) but without
indexes; constraints and indexes are added with the live names after the rows are in (a sort
per index instead of one insert per row). Work runs on up to two connections ("lanes") so that
both cores are busy: while one builds an index, the other builds another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import tag_of
from lead_ledger.projections.base import SHADOW_SCHEMA, Projection
from lead_ledger.projections.gate import REBUILD_LOCK_KEY
from lead_ledger.projections.registry import BY_NAME, PROJECTIONS

Progress = Callable[[str, int, int], None]  # (phase, done, total)
LANES: Final = 2  # one connection per core of the machine it was tuned on

# Lead streams whose events the set-based SQL path cannot apply; the Python fold takes them.
# Created with the shadow tables, dropped with them.
PYTHON_STREAMS: Final = f"{SHADOW_SCHEMA}.streams_folded_in_python"
CREATE_PYTHON_STREAMS: Final = f"CREATE TABLE {PYTHON_STREAMS} (stream_id text PRIMARY KEY)"
DROP_PYTHON_STREAMS: Final = f"DROP TABLE IF EXISTS {PYTHON_STREAMS}"
# The personal part of each sealed event the set-based SQL path applies, opened (`secret`: JSON
# `[fields, dedupe_keys]`), with the partition (`lane`) of its stream; the statements read the
# clear part from `events` itself. Unlogged, and dropped with the shadow tables; never in
# `public`.
OPENED_EVENTS: Final = f"{SHADOW_SCHEMA}.opened_events"
CREATE_OPENED_EVENTS: Final = f"""
CREATE UNLOGGED TABLE {OPENED_EVENTS} (position bigint, lane integer, secret jsonb)
WITH (autovacuum_enabled = false)
"""
DROP_OPENED_EVENTS: Final = f"DROP TABLE IF EXISTS {OPENED_EVENTS}"

# Primary keys, unique and exclusion constraints, then indexes that back no constraint.
# Each with the name of its first column (null for an expression).
SELECT_CONSTRAINTS: Final = """
SELECT conname, pg_get_constraintdef(oid),
       (SELECT attname FROM pg_attribute WHERE attrelid = conrelid AND attnum = conkey[1])
FROM pg_constraint
WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname
"""
SELECT_INDEXES: Final = """
SELECT pg_get_indexdef(x.indexrelid),
       (SELECT attname FROM pg_attribute WHERE attrelid = x.indrelid AND attnum = x.indkey[0])
FROM pg_index x
WHERE x.indrelid = $1::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
ORDER BY x.indexrelid
"""
TRY_REBUILD_LOCK: Final = "SELECT pg_try_advisory_lock($1)"
UNLOCK_REBUILD: Final = "SELECT pg_advisory_unlock($1)"


class RebuildError(RuntimeError):
    """A rebuild or verify could not run (unknown name, another one running, swap blocked)."""


class UnknownProjectionError(RebuildError):
    """A name that is no projection: the command was wrong, not the database."""


class RebuildBusyError(RebuildError):
    """Another rebuild or verify runs, or a lock was not granted in time: it may run later."""


@dataclass(slots=True)
class RebuildReport:
    names: list[str]
    events: int = 0  # applied in bulk (set-based SQL and the Python fold)
    events_in_sql: int = 0  # of those, applied by the set-based SQL path
    caught_up: int = 0  # events read by the catch-up passes
    position: int = 0  # the highest position folded; after a swap, the head it reflects
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return (self.events + self.caught_up) / self.seconds if self.seconds else 0.0


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


def select_projections(names: Sequence[str] | None) -> list[Projection]:
    if not names:
        return list(PROJECTIONS)
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        known = ", ".join(BY_NAME)
        raise UnknownProjectionError(
            f"unknown projection(s): {', '.join(unknown)} (known: {known})"
        )
    return [p for p in PROJECTIONS if p.name in names]  # registry order, each once


def handled_types(projections: Sequence[Projection]) -> list[str]:
    # Stored types are the events' tags (encode_event), so the read can skip the rest.
    return sorted({tag_of(cls) for p in projections for cls in p.handles})


@contextlib.asynccontextmanager
async def connection(pool_or_conn: asyncpg.Pool | Connection) -> AsyncIterator[Connection]:
    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            yield conn
    else:
        yield pool_or_conn


@contextlib.asynccontextmanager
async def connections(
    pool_or_conn: asyncpg.Pool | Connection, count: int = LANES
) -> AsyncIterator[list[Connection]]:
    """Up to `count` connections: a pool lends several (one per lane), a connection is the only
    one."""
    if not isinstance(pool_or_conn, asyncpg.Pool):
        yield [pool_or_conn]
        return
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(pool_or_conn.acquire()) for _ in range(count)]


@contextlib.asynccontextmanager
async def rebuild_lock(conn: Connection) -> AsyncIterator[None]:
    """One rebuild or verify at a time: they share the shadow tables."""
    if not await conn.fetchval(TRY_REBUILD_LOCK, REBUILD_LOCK_KEY):
        raise RebuildBusyError("another projection rebuild or verify is running")
    try:
        yield
    finally:
        await conn.execute(UNLOCK_REBUILD, REBUILD_LOCK_KEY)


async def create_shadow(
    conn: Connection, projections: Sequence[Projection], *, unlogged: bool = False
) -> None:
    """Empty copies of the live tables (columns, defaults, checks), dropping stale ones.
    `unlogged` for tables that are never swapped in (verify's): no WAL for their rows and
    indexes, so a replica is not sent what is dropped minutes later."""
    await drop_shadow(conn, projections)
    kind = "UNLOGGED TABLE" if unlogged else "TABLE"
    for p in projections:
        # No autovacuum while it is built: a worker vacuuming a freshly filled shadow table holds
        # a lock the swap needs, and it only yields after deadlock_timeout, longer than the
        # swap waits. The swap resets the option (`live_options`).
        await conn.execute(
            f"CREATE {kind} {SHADOW_SCHEMA}.{p.table} "
            f"(LIKE public.{p.table} INCLUDING ALL EXCLUDING INDEXES) "
            "WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
        )
    await conn.execute(CREATE_PYTHON_STREAMS)
    await conn.execute(CREATE_OPENED_EVENTS)


async def live_options(conn: Connection, projection: Projection) -> None:
    """The storage options the live tables have (none): autovacuum on again."""
    await conn.execute(
        f"ALTER TABLE {SHADOW_SCHEMA}.{projection.table} "
        "RESET (autovacuum_enabled, toast.autovacuum_enabled)"
    )


async def drop_shadow(conn: Connection, projections: Sequence[Projection]) -> None:
    for p in projections:
        await conn.execute(f"DROP TABLE IF EXISTS {SHADOW_SCHEMA}.{p.table}")
    await conn.execute(DROP_PYTHON_STREAMS)
    await conn.execute(DROP_OPENED_EVENTS)


@contextlib.asynccontextmanager
async def shadow_dropped(
    conns: Sequence[Connection], projections: Sequence[Projection]
) -> AsyncIterator[None]:
    """The shadow tables dropped when the block ends, whichever way: a rebuild's or verify's
    whole work. A failure (or an interruption) first ends the other lanes' sessions: a lane cut
    mid-statement (its task cancelled while asyncpg looked up a COPY's columns, say) can leave
    its session inside that statement, holding a lock on a shadow table that the drop would
    wait for for ever. The first connection, which holds the rebuild lock, drops the tables; a
    drop that still cannot run is left to the next rebuild, which drops stale shadow tables
    first."""
    try:
        yield
    except BaseException:
        for lane in conns[1:]:
            lane.terminate()
        raise
    finally:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await drop_shadow(conns[0], projections)


async def index_statements(
    conn: Connection, projection: Projection, *, key_lookups_only: bool = False
) -> tuple[list[str], str]:
    """The live table's constraints and indexes, retargeted to the shadow table with the live
    names, and the ANALYZE to run after them. Names are per schema, so they do not clash with
    the live ones, and after the swap they are exactly the live names again.

    `key_lookups_only`: only those that lead with the projection's key column, for shadow tables
    that are compared and dropped, never swapped (verify): the catch-up finds rows by key, and
    nothing else reads them through an index."""
    table = projection.table
    live, shadow = f"public.{table}", f"{SHADOW_SCHEMA}.{table}"

    def wanted(first_column: str | None) -> bool:
        return not key_lookups_only or first_column == projection.key

    statements = [
        f'ALTER TABLE {shadow} ADD CONSTRAINT "{name}" {definition}'
        for name, definition, first in await conn.fetch(SELECT_CONSTRAINTS, live)
        if wanted(first)
    ]
    for definition, first in await conn.fetch(SELECT_INDEXES, live):
        if not wanted(first):
            continue
        target = f" ON {live} "
        if definition.count(target) != 1:
            raise RebuildError(f"cannot retarget index definition: {definition}")
        statements.append(definition.replace(target, f" ON {shadow} "))
    return statements, f"ANALYZE {shadow}"


async def index_shadow(
    conns: Sequence[Connection],
    projections: Sequence[Projection],
    rows: dict[str, int],
    progress: Progress | None,
    *,
    key_lookups_only: bool = False,
) -> None:
    """Every shadow table's constraints, indexes and statistics, on all lanes at once
    (`key_lookups_only`: see `index_statements`).

    One queue, biggest tables first, constraints (which lock their table exclusively) before
    plain indexes (which share it): each lane takes the next statement when it is free, so a
    lane that drew a quick index does not sit idle while the other sorts two million keys.
    """
    constraints: list[tuple[int, str]] = []
    indexes: list[tuple[int, str]] = []
    analyzes: list[tuple[int, str]] = []
    for p in projections:
        statements, analyze = await index_statements(conns[0], p, key_lookups_only=key_lookups_only)
        for statement in statements:
            target = constraints if statement.startswith("ALTER TABLE") else indexes
            target.append((rows.get(p.name, 0), statement))
        analyzes.append((rows.get(p.name, 0), analyze))
    queue = [s for group in (constraints, indexes, analyzes) for _, s in sorted(group, key=_big)]
    total, done = len(queue), 0

    async def run(conn: Connection, statement: str) -> None:
        nonlocal done
        await conn.execute(statement)
        done += 1
        if progress:
            progress("index", done, total)

    await each_on_a_free_lane(conns, queue, run)


def _big(item: tuple[int, str]) -> int:
    return -item[0]


async def in_lanes(work: Sequence[Awaitable[None]]) -> None:
    """Run each lane's work at once. A TaskGroup: if one lane fails, the others are cancelled and
    waited for before their connections go back to the pool."""
    async with asyncio.TaskGroup() as group:
        for item in work:
            group.create_task(_awaited(item))


_Item = TypeVar("_Item")


async def each_on_a_free_lane(
    conns: Sequence[Connection],
    items: Sequence[_Item],
    work: Callable[[Connection, _Item], Awaitable[None]],
) -> None:
    """`work` on every item, in order, each by the next lane that is free: a lane that drew a
    quick item takes the next instead of waiting for the others."""
    queue = list(items)

    async def lane(conn: Connection) -> None:
        while queue:
            await work(conn, queue.pop(0))

    await in_lanes([lane(conn) for conn in conns])


async def _awaited(item: Awaitable[None]) -> None:
    await item
