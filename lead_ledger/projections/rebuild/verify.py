"""`verify`: rebuild into shadow tables (never swapped) and compare them with the live ones.

Each table is compared in two steps. First a digest per bucket of consecutive keys on both
sides: the row count and the sum of a 64-bit hash of each row's text (one pass over each
table, one small hash table). Then only the buckets whose digests differ are compared row by
row, as multisets of (key, md5 of the row's text), so every differing row is found and the
first ones are named.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.projections.base import SHADOW_SCHEMA, Projection
from lead_ledger.projections.rebuild.build import BATCH_SIZE, build_shadow
from lead_ledger.projections.rebuild.shadow import (
    Progress,
    RebuildBusyError,
    connections,
    each_on_a_free_lane,
    rebuild_lock,
    select_projections,
    shadow_dropped,
)
from lead_ledger.projections.rebuild.swap import gate_closed

MAX_DIFFERENCES: Final = 20
# A bucket holds the rows of 4,096 consecutive keys: at 10,000,000 leads ~2,500 buckets, a
# hash table of a few hundred kilobytes where comparing whole rows spilled gigabytes to disk.
BUCKET_BITS: Final = 12
# More differing buckets than this (a table far from its rebuild): compare whole tables.
MAX_BUCKETS: Final = 256


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
    # For a key among them with rows on both sides (a row changed rather than missing): the
    # columns whose values differ, by name. Names only: values may be personal data.
    changed_columns: dict[int, list[str]] = field(default_factory=dict)

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


def _bucket(projection: Projection) -> str:
    return f"coalesce({projection.key} >> {BUCKET_BITS}, -1)"


def digest_sql(projection: Projection) -> str:
    """The buckets whose digests differ between the two sides. A digest is the row count and
    the sum of `hashtextextended` of each row's text, so it compares the same text as the row
    comparison, as a multiset; two different multisets of rows share a digest with a chance of
    about 2^-64."""
    bucket, table = _bucket(projection), projection.table

    def side(schema: str) -> str:
        return (
            f"SELECT {bucket} AS bucket, count(*) AS n, sum(hashtextextended(t::text, 0)) AS h"
            f" FROM {schema}.{table} t GROUP BY 1"
        )

    return f"""
WITH live AS ({side("public")}), rebuilt AS ({side(SHADOW_SCHEMA)})
SELECT bucket FROM live FULL JOIN rebuilt USING (bucket)
WHERE live.n IS DISTINCT FROM rebuilt.n OR live.h IS DISTINCT FROM rebuilt.h
ORDER BY bucket
"""


def compare_sql(projection: Projection) -> str:
    """Both tables as multisets of (key, md5(row text)), EXCEPT ALL each way; `$1` limits the
    buckets compared (NULL: all). Columns are in the same order on both sides (the shadow is
    LIKE live)."""
    key, table = projection.key, projection.table
    buckets = f"($1::bigint[] IS NULL OR {_bucket(projection)} = ANY($1::bigint[]))"
    return f"""
WITH live AS (SELECT {key} AS key, md5(t::text) AS digest FROM public.{table} t WHERE {buckets}),
     rebuilt AS (SELECT {key} AS key, md5(t::text) AS digest
                 FROM {SHADOW_SCHEMA}.{table} t WHERE {buckets}),
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


def rows_sql(projection: Projection) -> str:
    """Both sides' rows of the keys in `$1`, as JSON objects."""
    key, table = projection.key, projection.table
    return f"""
SELECT 'live' AS side, {key} AS key, to_jsonb(t)::text AS row
FROM public.{table} t WHERE {key} = ANY($1::bigint[])
UNION ALL
SELECT 'rebuilt', {key}, to_jsonb(t)::text FROM {SHADOW_SCHEMA}.{table} t
WHERE {key} = ANY($1::bigint[])
"""


async def changed_columns(
    conn: Connection, projection: Projection, differences: Sequence[Difference]
) -> dict[int, list[str]]:
    """For each key with differing rows on both sides, the columns whose values differ (as a
    multiset over the key's rows: a table may hold several rows a key)."""
    both = sorted(
        {d.key for d in differences if d.side == "live"}
        & {d.key for d in differences if d.side == "rebuilt"}
    )
    if not both:
        return {}
    values: dict[tuple[int, str], dict[str, list[str]]] = {}
    for record in await conn.fetch(rows_sql(projection), both):
        row: dict[str, Any] = msgspec.json.decode(record["row"])
        columns = values.setdefault((record["key"], record["side"]), {})
        for name, value in row.items():
            columns.setdefault(name, []).append(msgspec.json.encode(value).decode())
    changed: dict[int, list[str]] = {}
    for key in both:
        live, rebuilt = values.get((key, "live"), {}), values.get((key, "rebuilt"), {})
        names = sorted(
            name
            for name in live.keys() | rebuilt.keys()
            if sorted(live.get(name, [])) != sorted(rebuilt.get(name, []))
        )
        changed[key] = names
    return changed


async def differing_buckets(conn: Connection, projection: Projection) -> list[int] | None:
    """The buckets to compare row by row: [] when every digest matches, None for all."""
    buckets = [r["bucket"] for r in await conn.fetch(digest_sql(projection))]
    return buckets if len(buckets) <= MAX_BUCKETS else None


async def compare(
    conn: Connection, projection: Projection, buckets: list[int] | None
) -> TableCheck:
    """Row by row, in `buckets` (None: the whole table)."""
    records = await conn.fetch(compare_sql(projection), buckets) if buckets != [] else []
    totals = {r["side"]: r["total"] for r in records}
    differences = [Difference(r["key"], r["side"], r["digest"]) for r in records][:MAX_DIFFERENCES]
    return TableCheck(
        name=projection.name,
        table=projection.table,
        only_live=totals.get("live", 0),
        only_rebuilt=totals.get("rebuilt", 0),
        differences=differences,
        changed_columns=await changed_columns(conn, projection, differences),
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
    async with (
        connections(pool_or_conn) as conns,
        rebuild_lock(conns[0]),
        shadow_dropped(conns, projections),
    ):
        conn = conns[0]
        # Disposable: never swapped in, so no WAL for them, and no index that only reads use
        # (the comparison scans whole tables).
        shadow = await build_shadow(conns, projections, progress, batch, disposable=True)
        # Without holding writers: a write between the catch-up and the compare shows as a
        # difference, so the buckets that differ are compared again below, writers held out
        # and the shadow caught up.
        checks = await _compare_in_lanes(conns, projections)
        if not all(c.ok for c, _ in checks):
            try:
                async with gate_closed(conn, shadow, lock_timeout_ms):
                    checks = [
                        (c, b) if c.ok else (await compare(conn, p, b), b)
                        for p, (c, b) in zip(projections, checks, strict=True)
                    ]
            except asyncpg.LockNotAvailableError:
                raise RebuildBusyError("verify could not hold writers out to re-check") from None
    report = shadow.report
    return VerifyReport(
        [c for c, _ in checks], report.events + report.caught_up, time.perf_counter() - started
    )


async def _compare_in_lanes(
    conns: Sequence[Connection], projections: Sequence[Projection]
) -> list[tuple[TableCheck, list[int] | None]]:
    """Every projection compared, each on the next free connection, with the buckets it
    compared row by row: the two large tables (leads, contacts) are compared at once, each on a
    core of the server."""
    checked: dict[str, tuple[TableCheck, list[int] | None]] = {}

    async def check(conn: Connection, projection: Projection) -> None:
        buckets = await differing_buckets(conn, projection)
        checked[projection.name] = (await compare(conn, projection, buckets), buckets)

    await each_on_a_free_lane(conns, projections, check)
    return [checked[p.name] for p in projections]
