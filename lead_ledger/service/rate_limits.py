"""Fixed one-minute windows per account and bucket, counted in PostgreSQL.

Fixed windows are what the vendors document ("100 requests per minute"); a burst across a
minute boundary can see up to twice the limit within sixty seconds, which they accept too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from lead_ledger.ledger.connection import Connection

# Every request of an account goes through its window row, which stays locked until the commit's
# WAL flush; counted asynchronously (set_config in the FROM clause, so it runs before the
# insert), the row is held for the statement alone. A crash may forget a few hits: harmless.
# `$3` hits at once: the requests of a group, counted in one statement (`take_many`).
HIT: Final = """
INSERT INTO rate_limit_windows AS w (account_id, bucket, window_start, hits)
SELECT $1, $2, date_trunc('minute', clock_timestamp()), $3
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ON CONFLICT (account_id, bucket, window_start) DO UPDATE SET hits = w.hits + excluded.hits
RETURNING hits
"""
FORGET_OLD_WINDOWS: Final = """
DELETE FROM rate_limit_windows WHERE window_start < clock_timestamp() - interval '1 hour'
"""
_CLEANUP_CHANCE: Final = 0.01


async def take(conn: Connection, account_id: int, bucket: str, limit: int) -> bool:
    """Count one request; False when it is over `limit` for this minute.

    Run it outside the request's transaction (autocommit): the window row stays locked until
    its statement's transaction ends, and every request of the account goes through that row.
    """
    [allowed] = await take_many(conn, account_id, bucket, [limit])
    return allowed


async def take_many(
    conn: Connection, account_id: int, bucket: str, limits: Sequence[int]
) -> list[bool]:
    """Count one request per limit in `limits`, in one statement; for each, in order, whether
    it is within its limit: exactly what `take` would answer for them one after another."""
    if conn.is_in_transaction():
        raise RuntimeError("rate limits must be taken outside a transaction")
    hits: int = await conn.fetchval(HIT, account_id, bucket, len(limits))
    await forget_old_windows_now_and_then(conn)
    return within(hits, limits)


def within(hits: int, limits: Sequence[int]) -> list[bool]:
    """For `len(limits)` hits just counted (the window now at `hits`), in order, whether each
    is within its limit."""
    first = hits - len(limits) + 1  # the hit number of the first of them
    return [first + n <= limit for n, limit in enumerate(limits)]


async def forget_old_windows_now_and_then(conn: Connection) -> None:
    """Delete the windows of the past hour and more, on about one call in a hundred."""
    if random.random() < _CLEANUP_CHANCE:  # noqa: S311 - housekeeping, not security
        await conn.execute(FORGET_OLD_WINDOWS)


def seconds_to_next_window(now: datetime) -> int:
    """Whole seconds until the minute after `now` begins, when a refused caller may try again
    (1 to 60: a Retry-After of 0 would invite a retry within the same full window)."""
    return 60 - now.second
