"""Rebuild projections from the log while the service runs; verify them; report their status.

A rebuild never touches a live table until its last, short transaction:

1-3. `build.py`: shadow tables `ledger_shadow.<table>` filled from every committed event but
     the last few (set-based SQL for most lead streams, the Python fold for the rest, indexes
     after, then a catch-up).
4.   `swap.py`: in one transaction with writers held out, the rest is caught up and each
     shadow table takes the live one's place.

Interrupted anywhere before the swap commits, the live tables are as they were and the shadow
tables are dropped. `verify.py` and `status.py` hold the other two commands; their names are
re-exported here for callers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.projections.rebuild.build import BATCH_SIZE, build_shadow
from lead_ledger.projections.rebuild.shadow import (
    Progress,
    RebuildBusyError,
    RebuildError,
    RebuildReport,
    UnknownProjectionError,
    connections,
    rebuild_lock,
    select_projections,
    shadow_dropped,
)
from lead_ledger.projections.rebuild.status import ProjectionStatus, status
from lead_ledger.projections.rebuild.swap import swap
from lead_ledger.projections.rebuild.verify import Difference, TableCheck, VerifyReport, verify

__all__ = [
    "BATCH_SIZE",
    "Difference",
    "Progress",
    "ProjectionStatus",
    "RebuildBusyError",
    "RebuildError",
    "RebuildReport",
    "TableCheck",
    "UnknownProjectionError",
    "VerifyReport",
    "rebuild",
    "status",
    "verify",
]


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
    async with (
        connections(pool_or_conn) as conns,
        rebuild_lock(conns[0]),
        # Interrupted or failed: no half-built shadow is left behind (a rerun drops it too).
        shadow_dropped(conns, projections),
    ):
        shadow = await build_shadow(conns, projections, progress, batch)
        t0 = time.perf_counter()
        if progress:
            progress("swap", 0, 1)
        await swap(conns[0], shadow, lock_timeout_ms=lock_timeout_ms, attempts=attempts)
        shadow.report.timings["swap"] = time.perf_counter() - t0
    shadow.report.seconds = time.perf_counter() - started
    return shadow.report
