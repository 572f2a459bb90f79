"""The reset of `serve`'s pools: nothing sent on release, an open transaction still ended."""

from __future__ import annotations

import asyncio

import asyncpg

from lead_ledger.ledger.database import connect, create_pool

LAST_QUERY = "SELECT query FROM pg_stat_activity WHERE pid = $1"


async def _last_query_after_release(pool: asyncpg.Pool, observer: asyncpg.Connection) -> str:
    async with pool.acquire() as conn:
        pid = conn.get_server_pid()
        await conn.execute("SELECT 'released after this'")
    query: str = await observer.fetchval(LAST_QUERY, pid)
    return query


async def test_a_pool_without_session_state_sends_nothing_on_release(database_url: str) -> None:
    """The default reset sends its query on release; `session_state=False` sends none."""
    observer = await connect(database_url)
    default = await create_pool(database_url, min_size=1, max_size=1)
    serving = await create_pool(database_url, min_size=1, max_size=1, session_state=False)
    try:
        assert "RESET ALL" in await _last_query_after_release(default, observer)
        assert await _last_query_after_release(serving, observer) == "SELECT 'released after this'"
    finally:
        await asyncio.gather(default.close(), serving.close(), observer.close())


async def test_a_transaction_left_open_is_rolled_back_on_release(database_url: str) -> None:
    """A connection returned inside a transaction comes back outside it, its locks released."""
    observer = await connect(database_url)
    serving = await create_pool(database_url, min_size=1, max_size=1, session_state=False)
    try:
        async with serving.acquire() as conn:
            pid = conn.get_server_pid()
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock(4242)")
        async with serving.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same connection, lent again
            assert not conn.is_in_transaction()
            assert await observer.fetchval("SELECT pg_try_advisory_xact_lock(4242)")
    finally:
        await asyncio.gather(serving.close(), observer.close())
