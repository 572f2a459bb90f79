"""Campaign locks: writers to one campaign wait for each other, others do not."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from lead_ledger.ledger.locks import (
    GLOBAL_NAMES_KEY,
    REBUILD_KEY,
    WRITE_GATE_KEY,
    account_lock_key,
    campaign_lock_key,
    lock_campaigns,
    migration_lock_key,
    roles_lock_key,
)


async def _lock_and_note(pool: asyncpg.Pool, campaigns: list[int], notes: list[str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await lock_campaigns(conn, campaigns)
        notes.append(f"locked {campaigns}")


async def test_second_writer_waits_for_the_first_to_commit(pool: asyncpg.Pool) -> None:
    """A writer to a locked campaign blocks until the holder's transaction ends."""
    notes: list[str] = []
    holder = await pool.acquire()
    try:
        tx = holder.transaction()
        await tx.start()
        assert await lock_campaigns(holder, [3, 1, 3]) == [1, 3]
        waiting = asyncio.create_task(_lock_and_note(pool, [3], notes))
        free = asyncio.create_task(_lock_and_note(pool, [2], notes))
        await asyncio.wait_for(free, timeout=5)
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await tx.commit()
        await asyncio.wait_for(waiting, timeout=5)
    finally:
        await pool.release(holder)
    assert notes == ["locked [2]", "locked [3]"]


async def test_locks_need_a_transaction(pool: asyncpg.Pool) -> None:
    """Transaction-scoped locks outside a transaction would be released at once: refused."""
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="transaction"):
            await lock_campaigns(conn, [1])


def test_lock_keys_do_not_collide_across_campaigns() -> None:
    """Each campaign id maps to its own key; ids outside 32 bits are refused."""
    assert len({campaign_lock_key(i) for i in range(1000)}) == 1000
    with pytest.raises(ValueError, match="lockable range"):
        campaign_lock_key(1 << 32)


def test_every_kind_of_lock_has_its_own_keys() -> None:
    """Campaign, account, names, gate, rebuild, migration and roles keys never coincide."""
    ids = range(1, 100)
    kinds = [
        {campaign_lock_key(i) for i in ids},
        {account_lock_key(i) for i in ids},
        {GLOBAL_NAMES_KEY, WRITE_GATE_KEY, REBUILD_KEY, migration_lock_key(), roles_lock_key()},
    ]
    assert len(set.union(*kinds)) == sum(len(k) for k in kinds)
