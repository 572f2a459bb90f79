"""Step 4 of a rebuild: the swap, in one short transaction, while the service keeps serving.

Close the write gate (no writer mid-transaction), lock `events` against ungated inserts, catch
up the rest (no fence needed: nothing can be in flight), move each live table to a fresh
per-rebuild schema, move the shadow table to `public`, drop the old one, record the
checkpoint. A lock timeout makes a blocked swap give up and retry rather than queue every
reader behind it.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Final

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.roles import grant_service
from lead_ledger.projections.base import SHADOW_SCHEMA
from lead_ledger.projections.gate import close_write_gate
from lead_ledger.projections.rebuild.build import BATCH_SIZE
from lead_ledger.projections.rebuild.catch_up import catch_up
from lead_ledger.projections.rebuild.shadow import RebuildBusyError, Shadow, live_options

TABLE_LOCK_TIMEOUT_MS: Final = 500
PATIENT_AFTER: Final = 2  # attempts with the short table timeout before the patient ones
SELECT_HEAD: Final = "SELECT coalesce(max(position), 0) FROM events"
UPSERT_CHECKPOINT: Final = """
INSERT INTO projection_checkpoints (name, position, rows, rebuilt_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (name) DO UPDATE
SET position = excluded.position, rows = excluded.rows, rebuilt_at = excluded.rebuilt_at
"""


@contextlib.asynccontextmanager
async def gate_closed(
    conn: Connection, shadow: Shadow, lock_timeout_ms: int, *, patient: bool = False
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
        # `patient` (the later attempts): wait longer than deadlock_timeout instead. An autovacuum
        # worker on a table (a live table freshly filled by the last rebuild, say) yields only
        # to a waiter that has waited deadlock_timeout; PostgreSQL then cancels it for us.
        table_timeout = lock_timeout_ms if patient else min(lock_timeout_ms, TABLE_LOCK_TIMEOUT_MS)
        await conn.execute(f"SET LOCAL lock_timeout = {int(table_timeout)}")
        # Writers that skip the gate: SHARE waits for every transaction that inserted events
        # and holds new inserts until commit, so the unfenced read below misses nothing.
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        while await catch_up(conn, shadow, final=True, batch=BATCH_SIZE) >= BATCH_SIZE:
            pass
        yield


async def swap(conn: Connection, shadow: Shadow, *, lock_timeout_ms: int, attempts: int) -> None:
    """Retried when a lock is not granted within the timeout."""
    for attempt in range(1, attempts + 1):
        saved = shadow.save()
        try:
            patient = attempt > PATIENT_AFTER
            async with gate_closed(conn, shadow, lock_timeout_ms, patient=patient):
                # Nothing can commit now: the tables reflect the log up to its head, including
                # events of types these projections ignore. That is the checkpoint.
                shadow.report.position = await conn.fetchval(SELECT_HEAD)
                old = f"ledger_old_{secrets.token_hex(4)}"
                await conn.execute(f"CREATE SCHEMA {old}")
                for p in shadow.projections:
                    await live_options(conn, p)
                    await conn.execute(f"ALTER TABLE public.{p.table} SET SCHEMA {old}")
                    await conn.execute(f"ALTER TABLE {SHADOW_SCHEMA}.{p.table} SET SCHEMA public")
                    # No CASCADE: if something depends on the old table, fail and roll back.
                    await conn.execute(f"DROP TABLE {old}.{p.table}")
                    rows = shadow.report.rows.get(p.name, 0)
                    await conn.execute(UPSERT_CHECKPOINT, p.name, shadow.report.position, rows)
                await conn.execute(f"DROP SCHEMA {old}")
                # The swapped-in tables were created without the live ones' grants: the service
                # must be able to use them the moment this transaction commits.
                await grant_service(conn, [p.table for p in shadow.projections])
        except asyncpg.LockNotAvailableError:
            # The attempt's catch-up was rolled back with it: so must its progress be.
            shadow.restore(saved)
            if attempt == attempts:
                raise RebuildBusyError(
                    f"swap gave up after {attempts} attempts: a lock was not granted within "
                    f"{lock_timeout_ms} ms (long transactions on the projection tables?)"
                ) from None
        else:
            return
