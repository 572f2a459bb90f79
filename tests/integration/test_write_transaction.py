"""Write transactions: locks released at commit, the reply only after the WAL is flushed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lead_ledger.ledger.connection import Connection
from lead_ledger.service.transactions import write_transaction


@pytest.fixture
def pool(owner_pool: asyncpg.Pool) -> asyncpg.Pool:
    """These tests create tables, which only the owner may: its pool."""
    return owner_pool


async def test_commit_is_durable_when_the_block_exits(pool: asyncpg.Pool) -> None:
    """The flush LSN has passed the transaction's own WAL by the time the block returns."""
    async with pool.acquire() as conn:
        async with write_transaction(conn):
            await conn.execute("CREATE TABLE t (x int)")
            await conn.execute("INSERT INTO t VALUES (1)")
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
            written = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        flushed = await conn.fetchval("SELECT pg_current_wal_flush_lsn()")
        assert await conn.fetchval("SELECT $1::pg_lsn >= $2::pg_lsn", flushed, written)
        # SET LOCAL ended with the transaction: the session is back to synchronous commits.
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SELECT count(*) FROM t") == 1


async def _insert_then_fail(conn: Connection) -> None:
    async with write_transaction(conn):
        await conn.execute("INSERT INTO u VALUES (1)")
        raise RuntimeError


async def test_an_error_rolls_back_and_skips_the_barrier(pool: asyncpg.Pool) -> None:
    """Nothing of a failed block is kept."""
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE u (x int)")
        with pytest.raises(RuntimeError):
            await _insert_then_fail(conn)
        assert await conn.fetchval("SELECT count(*) FROM u") == 0


async def test_nested_write_transactions_join_the_outer_one(pool: asyncpg.Pool) -> None:
    """A service that opens its own write transaction inside another's commits with it."""
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE v (x int)")
        with pytest.raises(RuntimeError):
            await _nested_then_fail(conn)
        assert await conn.fetchval("SELECT count(*) FROM v") == 0


async def _nested_then_fail(conn: Connection) -> None:
    async with write_transaction(conn):
        async with write_transaction(conn):
            await conn.execute("INSERT INTO v VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM v") == 1
        raise RuntimeError


async def test_campaign_locks_are_taken_by_begin_and_waited_for(pool: asyncpg.Pool) -> None:
    """A write transaction begun with a campaign holds its lock from BEGIN on: a second one of
    the same campaign waits in its BEGIN until the first commits, then sees what it wrote;
    another campaign's does not wait."""
    async with pool.acquire() as setup:
        await setup.execute("CREATE TABLE w (x int)")
    first_done = asyncio.Event()

    async def second(campaign_id: int) -> tuple[bool, int]:
        async with pool.acquire() as conn, write_transaction(conn, campaigns=[campaign_id]):
            return first_done.is_set(), await conn.fetchval("SELECT count(*) FROM w")

    async with pool.acquire() as conn:
        async with write_transaction(conn, campaigns=[7, 3]):
            locks = await conn.fetch(
                "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                " AND mode = 'ExclusiveLock'"
            )
            assert {row["objid"] for row in locks} == {3, 7}
            other = await asyncio.wait_for(second(5), timeout=5)
            waiting = asyncio.create_task(second(7))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await conn.execute("INSERT INTO w VALUES (1)")
            first_done.set()
        assert other == (False, 0)
        assert await asyncio.wait_for(waiting, timeout=5) == (True, 1)
        with pytest.raises(RuntimeError, match="when the write transaction begins"):
            async with write_transaction(conn), write_transaction(conn, campaigns=[3]):
                pass
