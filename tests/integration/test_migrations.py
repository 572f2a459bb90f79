"""Migrations: applied once, in order, under a lock; edited history stops the start."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from lead_ledger.ledger import key_store, store
from lead_ledger.ledger.database import connect, open_database
from lead_ledger.ledger.errors import MigrationError
from lead_ledger.ledger.locks import LOCK_SESSION, UNLOCK_SESSION, migration_lock_key
from lead_ledger.ledger.migrate import Migration, migrate, shipped_migrations
from lead_ledger.projections.base import SHADOW_SCHEMA
from lead_ledger.projections.rebuild import shadow
from lead_ledger.projections.registry import BY_NAME
from lead_ledger.service import (
    dnc_marks,
    erasures,
    flexydial_jobs,
    jtel,
    lead_inserts,
    ozonetel_delete,
    reads,
    vicidial_duplicates,
    vicidial_reads,
)

DatabaseFactory = Callable[..., Awaitable[str]]

# The key columns that compare bytes (0005_c_collation.sql): (schema, table, column).
C_COLLATED = [
    ("public", "contacts", "kind"),
    ("public", "contacts", "value"),
    ("public", "events", "stream_id"),
    ("public", "subject_keys", "subject_id"),
]
SELECT_COLLATION = """
SELECT collation_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2 AND column_name = $3
"""


def test_shipped_migrations_are_numbered_and_ordered() -> None:
    """The SQL files ship as package data and sort by their number."""
    names = [m.name for m in shipped_migrations()]
    assert names
    assert names[0] == "0001_events.sql"
    assert names == sorted(names)


async def test_migrate_applies_each_file_once(database_factory: DatabaseFactory) -> None:
    """A second run applies nothing and records each file with its checksum."""
    url = await database_factory(migrated=False)
    conn = await connect(url)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        rows = await conn.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
    finally:
        await conn.close()
    assert first == [m.name for m in shipped_migrations()]
    assert second == []
    assert [(r["name"], r["checksum"]) for r in rows] == [
        (m.name, m.checksum) for m in shipped_migrations()
    ]


async def test_a_command_migrates_a_new_database_but_never_upgrades_one(
    database_factory: DatabaseFactory,
) -> None:
    """`open_database` as the commands call it: a new database gets the schema; one with a
    migration pending is refused, naming it and `lead-ledger migrate`, and left as it was;
    with `upgrade` (serve) it is migrated."""
    new_url = await database_factory(migrated=False)
    pool = await open_database(new_url, min_size=1, max_size=1, check_role=False)
    await pool.close()
    conn = await connect(new_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            shipped_migrations()
        )
    finally:
        await conn.close()
    older_url = await database_factory(migrated=False)
    conn = await connect(older_url)
    try:
        await migrate(conn, shipped_migrations()[:-1])
    finally:
        await conn.close()
    last = shipped_migrations()[-1].name
    with pytest.raises(
        MigrationError, match=f"1 migration\\(s\\) pending \\({last}\\): run `lead-ledger migrate`"
    ):
        await open_database(older_url, min_size=1, max_size=1, check_role=False)
    conn = await connect(older_url)
    try:
        assert not await conn.fetchval("SELECT 1 FROM schema_migrations WHERE name = $1", last)
    finally:
        await conn.close()
    pool = await open_database(older_url, min_size=1, max_size=1, check_role=False, upgrade=True)
    await pool.close()


async def test_a_command_waits_for_a_new_database_being_migrated(
    database_factory: DatabaseFactory,
) -> None:
    """While `serve` or `migrate` brings a new database up (its migration lock held, some files
    applied), a command waits for it rather than refusing it as one with migrations pending."""
    url = await database_factory(migrated=False)
    holder = await connect(url)
    try:
        await holder.execute(LOCK_SESSION, migration_lock_key())
        await migrate(holder, shipped_migrations()[:-1])
        command = asyncio.create_task(open_database(url, min_size=1, max_size=1, check_role=False))
        await asyncio.sleep(0.5)
        assert not command.done()
        await migrate(holder)
        await holder.execute(UNLOCK_SESSION, migration_lock_key())
        pool = await asyncio.wait_for(command, 30)
        await pool.close()
    finally:
        await holder.close()


async def test_changed_migration_refuses_to_start(database_factory: DatabaseFactory) -> None:
    """An applied file whose text changed is named, and nothing is applied."""
    url = await database_factory(migrated=False)
    conn = await connect(url)
    try:
        await migrate(conn)
        edited = [
            Migration(m.name, m.sql + "\n-- edited after release\n") for m in shipped_migrations()
        ]
        with pytest.raises(MigrationError, match=r"0001_events\.sql changed after it was applied"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_unknown_applied_migration_refuses_to_start(
    database_factory: DatabaseFactory,
) -> None:
    """A database migrated by a newer version is not touched by an older one."""
    url = await database_factory(migrated=False)
    conn = await connect(url)
    try:
        newer = [*shipped_migrations(), Migration("9999_future.sql", "SELECT 1;")]
        await migrate(conn, newer)
        with pytest.raises(MigrationError, match=r"9999_future\.sql"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_failed_migration_rolls_back_alone(database_factory: DatabaseFactory) -> None:
    """A broken file leaves the files before it applied and itself unrecorded."""
    url = await database_factory(migrated=False)
    conn = await connect(url)
    try:
        broken = [*shipped_migrations(), Migration("9998_broken.sql", "CREATE TABLE t (;")]
        with pytest.raises(Exception, match="syntax error"):
            await migrate(conn, broken)
        names = await conn.fetch("SELECT name FROM schema_migrations")
    finally:
        await conn.close()
    assert {r["name"] for r in names} == {m.name for m in shipped_migrations()}


async def test_concurrent_migrators_do_not_race(database_factory: DatabaseFactory) -> None:
    """Four processes starting at once: every file applied exactly once, none fails."""
    url = await database_factory(migrated=False)
    conns = [await connect(url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        has_events = await conns[0].fetchval("SELECT to_regclass('events') IS NOT NULL")
    finally:
        for c in conns:
            await c.close()
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(m.name for m in shipped_migrations())
    assert count == len(shipped_migrations())
    assert has_events


async def test_key_columns_compare_bytes(owner_database_url: str) -> None:
    """Key columns have collation "C" after migrate, and a rebuild's shadow tables inherit it."""
    conn = await connect(owner_database_url)
    try:
        live = [await conn.fetchval(SELECT_COLLATION, *column) for column in C_COLLATED]
        await shadow.create_shadow(conn, [BY_NAME["contacts"]])
        try:
            copied = await conn.fetchval(SELECT_COLLATION, SHADOW_SCHEMA, "contacts", "value")
        finally:
            await shadow.drop_shadow(conn, [BY_NAME["contacts"]])
    finally:
        await conn.close()
    assert live == ["C"] * len(C_COLLATED)
    assert copied == "C"


# Each lookup on a key column, its parameters, and the indexes that can serve it: the parameters
# carry the database's collation and the columns "C" (the column's wins), so the text indexes
# stay usable; a mismatch would leave only a sequential scan. One index serves every contacts
# lookup, with a campaign or without (0015).
CONTACTS_INDEXES = ("contacts_value_idx",)
STREAM_INDEXES = ("events_stream_version_key",)
KEY_INDEXES = ("subject_keys_pkey",)
INDEXED_LOOKUPS = [
    (lead_inserts.SELECT_PHONE_OWNERS, (1, ["+919876543210"]), CONTACTS_INDEXES),
    (flexydial_jobs.SELECT_MATCHES, (1, "user_data", ["a", "b"]), CONTACTS_INDEXES),
    (jtel.SELECT_BY_USER_DATA, (1, "u-1"), CONTACTS_INDEXES),
    (jtel.SELECT_FIRST_BY_USER_DATA, (1, "u-1", [2]), CONTACTS_INDEXES),
    (reads.SELECT_LEADS, (1, 0, None, None, "+919876543210", 10), CONTACTS_INDEXES),
    (erasures.SELECT_LIVE, (1, "phone", ["+919876543210"]), CONTACTS_INDEXES),
    (ozonetel_delete.SELECT_HOLDERS, (1, "+919876543210", None), CONTACTS_INDEXES),
    (vicidial_duplicates.SELECT_HOLDERS, ([1, 2], ["+919876543210"]), CONTACTS_INDEXES),
    (vicidial_reads.SELECT_LIVE_BY_PHONE, (1, ["+919876543210"], 10), CONTACTS_INDEXES),
    (dnc_marks.SELECT_HOLDERS, (1, [7], ["+919876543210"], [None]), CONTACTS_INDEXES),
    (key_store.SELECT_KEYS, (["lead-1", "lead-2"],), KEY_INDEXES),
    (key_store.SELECT_KEYS_AFTER, ("lead-1", 10), KEY_INDEXES),
    (erasures.SELECT_SUBJECT, ("lead-1", 1), KEY_INDEXES),
    (store.SELECT_STREAM, ("lead-1", 0, None, None), STREAM_INDEXES),
    (store.SELECT_STREAMS, (["lead-1", "job-7"],), STREAM_INDEXES),
    (store.SELECT_STREAM_AS_OF, ("lead-1", 0, None, None, datetime.now(UTC)), STREAM_INDEXES),
    (store.SELECT_STREAMS_AS_OF, (["lead-1", "job-7"], datetime.now(UTC)), STREAM_INDEXES),
]


@pytest.mark.parametrize(("sql", "args", "indexes"), INDEXED_LOOKUPS)
async def test_key_lookups_use_their_index(
    database_url: str, sql: str, args: tuple[object, ...], indexes: tuple[str, ...]
) -> None:
    """Each key lookup scans a text index on its key columns, not the whole table."""
    conn = await connect(database_url)
    try:
        # Sequential scans priced out, so the plan shows whether an index is usable at all
        # (the empty test tables would otherwise be read whole).
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
    finally:
        await conn.close()
    assert any(f" {index} " in plan for index in indexes), plan
    assert "Seq Scan" not in plan, plan
