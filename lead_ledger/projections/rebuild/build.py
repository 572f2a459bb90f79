"""Build shadow tables holding every committed event but the last few (steps 1-3 of a rebuild).

1. Shadow tables are created like the live ones, without indexes.
2. Bulk, below the fence F (the oldest transaction running when the build began): lead streams
   the set-based SQL path can apply are applied on the server, partitioned over the lanes
   (`set_based.py`); every other event is read in keyset batches in position order, folded in
   memory and COPYed out (`replay.py`). Position order is stream order: an append only claims
   version n+1 after version n committed, so it gets a higher position. Then the constraints
   and indexes, on all lanes.
3. Catch-up of the events from F on (`catch_up.py`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.projections.base import Projection
from lead_ledger.projections.rebuild.catch_up import catch_up
from lead_ledger.projections.rebuild.replay import (
    copy_folded,
    count_left_to_python,
    fold_log,
    gc_paused,
)
from lead_ledger.projections.rebuild.set_based import apply_set_based
from lead_ledger.projections.rebuild.shadow import (
    Progress,
    RebuildReport,
    Shadow,
    create_shadow,
    handled_types,
    index_shadow,
)

BATCH_SIZE: Final = 20_000
SELECT_FENCE: Final = "SELECT pg_snapshot_xmin(pg_current_snapshot())"


async def build_shadow(
    conns: Sequence[Connection],
    projections: list[Projection],
    progress: Progress | None,
    batch: int,
    *,
    disposable: bool = False,
) -> Shadow:
    """The shadow tables, filled and caught up. `disposable`: tables that are compared and
    dropped, never swapped in (verify's): unlogged, and with only the indexes the catch-up
    finds rows by (`index_statements`)."""
    conn = conns[0]
    report = RebuildReport(names=[p.name for p in projections])
    shadow = Shadow(projections, handled_types(projections), report)
    fence: int = await conn.fetchval(SELECT_FENCE)
    await create_shadow(conn, projections, unlogged=disposable)
    timings = report.timings

    def folded() -> None:
        if progress:
            progress("read", report.events, total)

    # The rows folded in Python are millions of objects that live until the COPY: no cyclic GC
    # walks them meanwhile (replay.gc_paused). Both paths read the subjects' keys with their
    # events, a batch at a time.
    with gc_paused():
        t0 = time.perf_counter()
        sql_types = await apply_set_based(
            conns, shadow, fence, key_store.master_key(), progress, batch
        )
        # The statements alone: opening their events is timed apart ("open").
        timings["sql"] = time.perf_counter() - t0 - timings.get("open", 0.0)
        in_sql = report.events
        total = (
            in_sql + await count_left_to_python(conn, shadow, fence, sql_types) if progress else 0
        )
        if progress:
            progress("read", in_sql, total)
        rows = await fold_log(
            conn, shadow, fence, sql_types, batch, conns[-1], folded if progress else None
        )
        t0 = time.perf_counter()
        await copy_folded(conns, shadow, rows, progress)
        timings["copy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    await index_shadow(conns, projections, report.rows, progress, key_lookups_only=disposable)
    timings["index"] = time.perf_counter() - t0

    # Everything below the fence is folded; the feed resumes at the fence's first transaction.
    shadow.cursor = (fence, 0)
    t0 = time.perf_counter()
    while await catch_up(conn, shadow, final=False, batch=batch) >= batch:
        pass
    timings["catch-up"] = time.perf_counter() - t0
    return shadow
