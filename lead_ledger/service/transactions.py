"""Write transactions that release their locks before the disk flush, and answer after it.

A campaign's writers are serialised by its advisory lock, which PostgreSQL holds until COMMIT
returns, and a synchronous COMMIT waits for the WAL flush (an fsync: milliseconds on ordinary
disks). One campaign could then take only one write per fsync. So a write transaction commits
asynchronously, which releases its locks at once, and then waits for durability outside them:
a transaction that writes WAL and commits with synchronous_commit on flushes the WAL up to its
commit record, past ours, and concurrent requests share one fsync (group commit).

No request is answered before its events are on disk. What changes: another request may read
(and decide on, e.g. a duplicate check) events a few milliseconds before they are durable; if
the server crashed in that window, such a decision could refer to a write that was lost, and
whose own request had not been answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.projections.gate import enter_write_gate

ASYNC_COMMIT: Final = "SET LOCAL synchronous_commit TO off"
# Runs in its own (autocommit) transaction, where the session's synchronous_commit applies. A
# transactional logical message takes an xid and writes WAL, so its commit must flush; merely
# taking an xid (pg_current_xact_id()) writes no WAL, and PostgreSQL then skips the flush.
FLUSH_BARRIER: Final = "SELECT pg_logical_emit_message(true, 'lead-ledger', '')"


@asynccontextmanager
async def write_transaction(conn: Connection) -> AsyncIterator[None]:
    """A transaction whose commit does not hold locks through the fsync; durable on exit."""
    async with conn.transaction():
        await conn.execute(ASYNC_COMMIT)
        # First, before any lock or read: a projection swap waits for writers inside the gate.
        await enter_write_gate(conn)
        yield
    await conn.fetchval(FLUSH_BARRIER)
