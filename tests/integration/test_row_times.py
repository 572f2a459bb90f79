"""The SQL paths give a lead row the times of ledger/row_times.py, on a real PostgreSQL.

The rebuild's set-based statements and the inline statement for large batches of new leads
compute `entry_at` and `modified_at` in SQL; here both are held to `times_after` folded over
the same recorded events.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import pytest

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadEvent, decode_event, stream_of_lead
from lead_ledger.ledger.row_times import LeadTimes, times_after
from lead_ledger.ledger.store import read_stream
from lead_ledger.projections.rebuild import rebuild
from tests.factories import make_account, make_campaign
from tests.integration.test_fresh_inserts import insert
from tests.integration.test_rebuild import change_lead, seed, update


@pytest.fixture
def pool(owner_pool: asyncpg.Pool) -> asyncpg.Pool:
    """Rebuilds are the owner's work: this module's pool logs in as the owner."""
    return owner_pool


SELECT_TIMES = "SELECT lead_id, entry_at, modified_at FROM leads ORDER BY lead_id"
# True once no transaction older than the last event's is running, on any database of the
# server: only then is every event below the rebuild's fence, so none is left to the catch-up.
ALL_BELOW_FENCE = """
SELECT pg_snapshot_xmin(pg_current_snapshot()) > (SELECT max(transaction_id) FROM events)
"""


async def wait_until_all_below_fence(conn: Connection) -> None:
    """The server is shared with other test runs, whose open transactions hold the fence back."""
    for _ in range(600):
        if await conn.fetchval(ALL_BELOW_FENCE):
            return
        await asyncio.sleep(0.1)
    pytest.fail("a transaction older than the test's writes kept running for a minute")


async def rule_times(conn: Connection, lead_ids: list[int]) -> dict[int, tuple[datetime, ...]]:
    """Each live lead's times as the rule gives them from its recorded events."""
    live: dict[int, tuple[datetime, ...]] = {}
    for lead_id in lead_ids:
        times: LeadTimes | None = None
        for recorded in await read_stream(conn, stream_of_lead(lead_id)):
            event = decode_event(recorded)
            assert isinstance(event, LeadEvent)
            times = times_after(times, event, recorded.recorded_at)
        if times is not None:
            live[lead_id] = tuple(times)
    return live


async def table_times(conn: Connection) -> dict[int, tuple[datetime, ...]]:
    return {r["lead_id"]: (r["entry_at"], r["modified_at"]) for r in await conn.fetch(SELECT_TIMES)}


async def test_sql_paths_write_the_rule_s_times(pool: asyncpg.Pool) -> None:
    """Leads inserted by the fresh-insert statement and rebuilt in SQL carry the rule's times."""
    account_id = await make_account(pool)
    fresh = await insert(pool, account_id, await make_campaign(pool, account_id))
    async with pool.acquire() as conn:
        # Written inline by the statement for large batches: entered and modified when recorded.
        assert await table_times(conn) == await rule_times(conn, fresh)
        # Later changes in their own transactions, so modified_at moves away from entry_at.
        for lead_id in fresh[:5]:
            await change_lead(conn, lead_id, update({"city": f"c{lead_id}"}))
        for lead_id in fresh[3:8]:
            await change_lead(conn, lead_id, update({"agent": f"a{lead_id}"}))
        others = await seed(conn, leads=18)
        await wait_until_all_below_fence(conn)
    report = await rebuild(pool)
    assert report.events_in_sql > len(fresh)  # most streams went through the SQL path
    async with pool.acquire() as conn:
        rebuilt = await table_times(conn)
        assert rebuilt == await rule_times(conn, [*fresh, *others])
    assert any(entry != modified for entry, modified in rebuilt.values())
