"""A streaming replica of the database, for reads that only show data (docs/operations.md, "A
read replica"): where it is, and whether it has replayed a position yet."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

import asyncpg

from lead_ledger.ledger.connection import Connection

# The event at a position is there once its transaction's commit is replayed: a commit the
# reader knows of, so it is on the primary and comes to the replica in commit order.
SELECT_HAS_POSITION: Final = "SELECT EXISTS (SELECT 1 FROM events WHERE position = $1)"
_POLL_SECONDS: Final = 0.01
# What a replica that is down, restarting or replaying raises: the read then goes to the
# primary. (A hot standby cancels a query that conflicts with the recovery it replays, with
# SQLSTATE 40001: a long read there can fail through no fault of its own.)
REPLICA_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class Replica:
    """The replica's pool and URL (export workers connect to it), and how long a read waits
    for it to replay a position before the primary serves the read."""

    pool: asyncpg.Pool
    url: str
    wait_seconds: float


async def replayed(conn: Connection, position: int, wait_seconds: float) -> bool:
    """Whether the replica holds the event at `position`, waiting up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if await conn.fetchval(SELECT_HAS_POSITION, position):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_SECONDS)
