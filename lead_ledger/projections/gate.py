"""The projection write gate: writers share it, a projection swap takes it alone.

A rebuild swaps whole tables. For the swapped-in tables to hold every committed event, no writer
may be between its append and its commit at that moment: its inline projection writes would go
to the table being swapped out and be lost. Writers therefore hold the gate shared for their
whole transaction (`enter_write_gate`, taken first, before campaign locks and reads), and the
swap holds it exclusively (`close_write_gate`) for its one short transaction. Shared holders
never wait for each other, so writers pay one uncontended lock per transaction.

Both are transaction-scoped advisory locks: they end with the transaction, also on a crash.
"""

from __future__ import annotations

from typing import Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.locks import REBUILD_KEY, WRITE_GATE_KEY

# The keys live with every other advisory-lock key in ledger/locks.py, so none can collide.
REBUILD_LOCK_KEY: Final = REBUILD_KEY

ENTER_GATE: Final = "SELECT pg_advisory_xact_lock_shared($1)"
CLOSE_GATE: Final = "SELECT pg_advisory_xact_lock($1)"


async def enter_write_gate(conn: Connection) -> None:
    """Hold the gate shared until this transaction ends. Call it first in a write transaction.

    Taken after the transaction has read projection tables, it can deadlock with a swap that
    holds the gate and waits for those tables; the swap then times out and retries, but the
    writer may wait up to the swap's lock timeout.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("the write gate is transaction-scoped; open a transaction first")
    await conn.execute(ENTER_GATE, WRITE_GATE_KEY)


async def close_write_gate(conn: Connection) -> None:
    """Wait until no writer holds the gate, then keep new ones out until this transaction ends."""
    if not conn.is_in_transaction():
        raise RuntimeError("the write gate is transaction-scoped; open a transaction first")
    await conn.execute(CLOSE_GATE, WRITE_GATE_KEY)
