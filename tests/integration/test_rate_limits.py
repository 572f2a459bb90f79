"""Rate limits hold across connections (and so across server processes)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lead_ledger.service.rate_limits import take, take_many


async def test_limit_is_shared_by_every_connection(pool: asyncpg.Pool) -> None:
    """Ten concurrent requests on different connections against a limit of 6: exactly 6 pass."""

    async def one() -> bool:
        async with pool.acquire() as conn:
            return await take(conn, 1, "ozonetel_add", 6)

    results = await asyncio.gather(*(one() for _ in range(10)))
    assert sorted(results) == [False] * 4 + [True] * 6
    async with pool.acquire() as conn:
        assert await take(conn, 2, "ozonetel_add", 6) is True  # another account: its own window
        assert await take(conn, 1, "ozonetel_bulk", 1) is True  # another bucket too


async def test_limits_refuse_to_run_inside_a_transaction(pool: asyncpg.Pool) -> None:
    """Inside a request's transaction the window row would stay locked for the whole request."""
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(RuntimeError, match="outside a transaction"):
            await take(conn, 1, "x", 1)


async def test_take_many_numbers_its_hits_in_order(pool: asyncpg.Pool) -> None:
    """Four hits in one statement answer as four takes one after another would, each against
    its own limit, and count four."""
    async with pool.acquire() as conn:
        assert await take(conn, 3, "ozonetel_add", 10) is True  # hit 1
        assert await take_many(conn, 3, "ozonetel_add", [3, 3, 3, 9]) == [True, True, False, True]
        assert await take(conn, 3, "ozonetel_add", 6) is True  # hit 6
        assert await take(conn, 3, "ozonetel_add", 6) is False  # hit 7
