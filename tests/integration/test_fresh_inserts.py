"""Large batches of new leads are projected by the server's SQL; the rows are the fold's."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import msgspec
import pytest

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import init_connection
from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import (
    SCHEMA_VERSION,
    DomainEvent,
    LeadFields,
    LeadInserted,
    LeadUpdated,
)
from lead_ledger.projections import fresh_inserts
from lead_ledger.projections.base import Pair
from lead_ledger.projections.registry import apply_inline
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.leads import update_leads
from lead_ledger.service.transactions import write_transaction
from tests.factories import NATIVE, make_account, make_campaign
from tests.support import logged_statements

ROWS = fresh_inserts.SQL_FROM + 44
LEAD_VALUES = """
SELECT version, phone_numbers, dedupe_keys, name, first_name, middle_initial, last_name, title,
       salutation, company, address1, address2, address3, city, state, postal_code, country,
       email, comments, user_data, reference_number, crm, agent, skill, priority, expires_at,
       status, extra, entry_at = modified_at AS same_times
FROM leads WHERE campaign_id = $1 ORDER BY lead_id
"""
CONTACTS = """
SELECT l.rank, c.kind, c.value
FROM contacts c
JOIN (SELECT lead_id, rank() OVER (ORDER BY lead_id) AS rank FROM leads WHERE campaign_id = $1) l
  USING (lead_id)
ORDER BY l.rank, c.kind, c.value
"""


def varied(i: int) -> LeadFields:
    """Leads with every kind of field, empty and set, so both paths meet every case."""
    expiry = [
        None,
        datetime(2031, 5, 17, 9, 30, tzinfo=UTC),
        datetime(2031, 5, 17, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2031, 5, 17, 9, 30),  # noqa: DTZ001 - no offset: read as UTC in any session zone
    ][i % 4]
    return LeadFields(
        phone_numbers=[f"98{i:08d}", f"+4420794{i:05d}"][: 1 + i % 2],
        name=None if i % 4 == 0 else f"Lead {i} \u00e9\u4e2d",
        first_name="" if i % 5 == 0 else f"F{i}",
        email=f"l{i}@example.com" if i % 2 else None,
        user_data="" if i % 3 == 0 else f"UD{i}",
        reference_number=f"R{i}" if i % 7 else None,
        crm={"customer:id": f"C{i}", "customer:note": "" if i % 2 else "n", "a:b": "x"},
        agent=f"agent{i % 3}" if i % 2 else None,
        priority=i % 10,
        expires_at=expiry,
        extra={"n": i, "f": 0.5, "flag": i % 2 == 0, "none": None, "s": "t"},
    )


async def insert_in(conn: Connection, account_id: int, campaign_id: int) -> list[int]:
    """ROWS varied leads into the campaign, in the caller's transaction; their ids in order."""
    result = await insert_leads(
        conn,
        NATIVE,
        account_id=account_id,
        campaign_id=campaign_id,
        rows=[varied(i) for i in range(ROWS)],
        check_duplicates=False,
    )
    return sorted(result.inserted.values())


async def insert(pool: asyncpg.Pool, account_id: int, campaign_id: int) -> list[int]:
    async with pool.acquire() as conn, write_transaction(conn):
        return await insert_in(conn, account_id, campaign_id)


async def test_sql_path_writes_the_rows_the_fold_writes(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same leads, inserted once through the SQL path and once through the Python fold,
    give equal lead and contact rows."""
    account_id = await make_account(pool)
    by_sql = await make_campaign(pool, account_id, "by-sql")
    by_fold = await make_campaign(pool, account_id, "by-fold")
    await insert(pool, account_id, by_sql)
    monkeypatch.setattr(fresh_inserts, "SQL_FROM", 10**9)
    await insert(pool, account_id, by_fold)
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE campaign_id = $1", by_sql) == ROWS
    assert await pool.fetch(LEAD_VALUES, by_sql) == await pool.fetch(LEAD_VALUES, by_fold)
    assert await pool.fetch(CONTACTS, by_sql) == await pool.fetch(CONTACTS, by_fold)


async def test_updates_in_the_same_write_find_the_new_rows(pool: asyncpg.Pool) -> None:
    """After a batch projected by SQL, updates of its leads apply to the rows it wrote."""
    account_id = await make_account(pool)
    campaign_id = await make_campaign(pool, account_id)
    async with pool.acquire() as conn, write_transaction(conn):
        first = (await insert_in(conn, account_id, campaign_id))[0]
        await update_leads(
            conn, NATIVE, account_id=account_id, patches={first: {"city": "Pune", "agent": "z"}}
        )
    row = await pool.fetchrow("SELECT city, agent, version FROM leads WHERE lead_id = $1", first)
    assert row is not None
    assert dict(row) == {"city": "Pune", "agent": "z", "version": 3}


async def test_a_connection_in_another_time_zone_writes_the_same_rows_and_keeps_its_zone(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """On a connection in Asia/Kolkata, new leads get the rows they get on the package's pools
    (in UTC, where no time-zone setting is sent and the rows go in with the events), and the
    connection keeps its zone."""
    account_id = await make_account(pool)
    on_pool = await make_campaign(pool, account_id, "on-pool")
    zoned = await make_campaign(pool, account_id, "zoned")
    async with (
        pool.acquire() as pooled,
        write_transaction(pooled),
    ):
        with logged_statements(pooled) as statements:
            await insert_in(pooled, account_id, on_pool)
    assert not [s for s in statements if "TimeZone" in s]
    assert ["INSERT INTO events" in s for s in statements if "INSERT INTO public.leads" in s] == [
        True
    ]
    conn = await asyncpg.connect(database_url, server_settings={"TimeZone": "Asia/Kolkata"})
    try:
        await init_connection(conn)
        async with write_transaction(conn):
            with logged_statements(conn) as zoned_statements:
                await insert_in(conn, account_id, zoned)
            assert conn.get_settings().TimeZone == "Asia/Kolkata"
        separate = [s for s in zoned_statements if "INSERT INTO public.leads" in s]
        assert ["INSERT INTO events" in s for s in separate] == [False]
    finally:
        await conn.close()
    assert await pool.fetch(LEAD_VALUES, zoned) == await pool.fetch(LEAD_VALUES, on_pool)
    assert await pool.fetch(CONTACTS, zoned) == await pool.fetch(CONTACTS, on_pool)


def pair(position: int, kind: str = "LeadInserted", version: int = 1) -> Pair:
    """A recorded event and the event as written: a LeadInserted, or a LeadUpdated."""
    event: DomainEvent = (
        LeadInserted(
            lead_id=position, account_id=1, campaign_id=1, fields=LeadFields(), dedupe_keys=[]
        )
        if kind == "LeadInserted"
        else LeadUpdated(lead_id=position, changes=[])
    )
    recorded = RecordedEvent(
        position=position,
        event_id=uuid.uuid4(),
        stream_id=f"lead-{position}",
        stream_version=version,
        type=kind,
        schema_version=SCHEMA_VERSION,
        data=b"{}",
        metadata=b"{}",
        recorded_at=datetime.now(UTC),
        transaction_id=1,
    )
    return recorded, event


def test_only_first_inserts_go_to_sql() -> None:
    """Below SQL_FROM nothing is split off; at it, only version-1 LeadInserted events are."""
    below = [pair(p) for p in range(fresh_inserts.SQL_FROM - 1)]
    assert fresh_inserts.split_fresh_inserts(below) == ([], below)
    others = [pair(10**6, "LeadUpdated", 2), pair(10**6 + 1, "LeadInserted", 2)]
    batch = [pair(p) for p in range(fresh_inserts.SQL_FROM)] + others
    fresh, rest = fresh_inserts.split_fresh_inserts(batch)
    assert [recorded.position for recorded, _ in fresh] == list(range(fresh_inserts.SQL_FROM))
    assert rest == others


def test_fresh_inserts_come_from_one_append() -> None:
    """Leads recorded at different times were not appended together: refused."""
    first, second = pair(1), pair(2)
    later = msgspec.structs.replace(
        first[0], recorded_at=first[0].recorded_at + timedelta(seconds=1)
    )
    with pytest.raises(ValueError, match="one append"):
        asyncio.run(fresh_inserts.apply_fresh_inserts(None, [(later, first[1]), second]))  # type: ignore[arg-type]


def test_only_new_leads_can_be_projected_along_their_append() -> None:
    """An event said to be projected by its append's statement that is no new lead is an
    error, not a row silently left out."""
    update = pair(7, "LeadUpdated", 2)
    with pytest.raises(ValueError, match="not new leads"):
        asyncio.run(apply_inline(None, [pair(1), update], projected=[update[0].event_id]))  # type: ignore[arg-type]
