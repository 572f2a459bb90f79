"""Migrations: applied once, in order, under a lock; edited history stops the start."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from lead_ledger.ledger.database import connect
from lead_ledger.ledger.errors import MigrationError
from lead_ledger.ledger.migrate import Migration, migrate, shipped_migrations

DatabaseFactory = Callable[..., Awaitable[str]]


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
