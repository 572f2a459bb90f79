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

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Final

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.locks import WRITE_GATE_KEY, campaign_lock_key
from lead_ledger.metrics import EVENTS_APPENDED

# Each is one round trip (a simple-protocol script; the only value in them is our own constant).
# BEGIN_WRITE commits asynchronously (set_config(..., true) is SET LOCAL) and enters the
# projection write gate first, before any lock or read (see projections/gate.py).
BEGIN_WRITE: Final = (
    "BEGIN; SELECT set_config('synchronous_commit', 'off', true), "
    f"pg_advisory_xact_lock_shared({WRITE_GATE_KEY})"
)
# A campaign lock in BEGIN's script: the key is an int from ledger/locks.py, never input.
LOCK_CAMPAIGN: Final = "SELECT pg_advisory_xact_lock(%d)"
# The barrier runs after COMMIT in its own implicit transaction, where the session's
# synchronous_commit applies. A transactional logical message takes an xid and writes WAL, so
# its commit must flush, past ours; merely taking an xid (pg_current_xact_id()) writes no WAL,
# and PostgreSQL then skips the flush.
COMMIT_DURABLY: Final = "COMMIT; SELECT pg_logical_emit_message(true, 'lead-ledger', '')"


# The types of the events `record` appends in the write transaction of this task: counted in
# the metrics only once it commits, so a refused request's rolled-back events never are.
APPENDED_TYPES: Final[ContextVar[list[str] | None]] = ContextVar("appended_types", default=None)


@asynccontextmanager
async def write_transaction(
    conn: Connection, *, campaigns: Sequence[int] = ()
) -> AsyncIterator[None]:
    """A transaction whose commit does not hold locks through the fsync; durable on exit.

    Inside a transaction already open, it joins it: the outer one commits (and flushes).
    `campaigns`: their locks are taken in the BEGIN round trip itself, after the write gate, in
    ascending id order (ledger/locks.py), each by a statement of its own in the script, so the
    statements after it see every write committed before the locks were granted.
    """
    if conn.is_in_transaction():
        if campaigns:
            raise RuntimeError("campaign locks are taken when the write transaction begins")
        yield
        return
    locks = "".join(f"; {LOCK_CAMPAIGN % key}" for key in _lock_keys(campaigns))
    await conn.execute(BEGIN_WRITE + locks)
    appended = APPENDED_TYPES.set([])
    try:
        yield
    except BaseException:
        # If the connection is unusable (cancelled mid-query, closed), the pool's release
        # resets or discards it; the original error is the one worth raising.
        with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
            await conn.execute("ROLLBACK")
        raise
    finally:
        types = APPENDED_TYPES.get() or []
        APPENDED_TYPES.reset(appended)
    await conn.execute(COMMIT_DURABLY)
    # Counted by type first: a 10,000-event batch is a few label lookups, not 10,000.
    for event_type, count in Counter(types).items():
        EVENTS_APPENDED.labels(event_type).inc(count)


def _lock_keys(campaigns: Sequence[int]) -> list[int]:
    return [int(campaign_lock_key(campaign_id)) for campaign_id in sorted(set(campaigns))]
