"""A LISTEN that wakes the job worker, the callback dispatcher and subscription delivery
survives its connection: when the database drops it, a new one listens again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lead_ledger.service.worker import listening

CHANNEL = "ledger_test_wake"
LISTENERS = """
SELECT array_agg(pid) FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE 'LISTEN %' || $1 || '%'
"""


async def _listeners(pool: asyncpg.Pool) -> list[int]:
    for _ in range(1000):
        found: list[int] | None = await pool.fetchval(LISTENERS, CHANNEL)
        if found:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("nothing listens")


async def _woken(pool: asyncpg.Pool, wake: asyncio.Event) -> None:
    wake.clear()
    await pool.execute(f"NOTIFY {CHANNEL}")
    await asyncio.wait_for(wake.wait(), 5)


@pytest.mark.parametrize("own_connection", [False, True])
async def test_a_listener_whose_connection_is_dropped_listens_again(
    pool: asyncpg.Pool, database_url: str, own_connection: bool
) -> None:
    """pg_terminate_backend of the listening session: the event is set at once (what was
    notified meanwhile may be missed: the loop looks), and a NOTIFY wakes it again."""
    async with listening(pool, CHANNEL, database_url if own_connection else None) as wake:
        await _woken(pool, wake)
        (pid,) = await _listeners(pool)
        wake.clear()
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.wait_for(wake.wait(), 5)
        (again,) = await _listeners(pool)
        assert again != pid
        await _woken(pool, wake)
