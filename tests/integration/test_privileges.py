"""The service's role cannot rewrite the log: least privilege, enforced by PostgreSQL.

The harness gives every test a database owned by `lead_ledger_owner` and a URL that logs in as
`lead_ledger_app`, a member of `lead_ledger_service` (tests/conftest.py), as a deployment has.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import structlog
from aiohttp.test_utils import TestServer

from lead_ledger.api.app import create_app
from lead_ledger.ledger.database import connect, prepare_embedded, with_database
from lead_ledger.ledger.envelope import NO_STREAM, NewEvent, StreamAppend
from lead_ledger.ledger.errors import MigrationError
from lead_ledger.ledger.migrate import Migration, migrate, shipped_migrations
from lead_ledger.ledger.roles import (
    APP_ROLE,
    OWNER_ROLE,
    SERVICE_ROLE,
    grant_service,
    warn_if_privileged,
    with_user,
)
from lead_ledger.ledger.store import COPY_THRESHOLD, append_events
from lead_ledger.projections.rebuild import rebuild
from lead_ledger.settings import Settings
from tests.conftest import owner_url, role_url

# Each way a superuser or the table's owner could rewrite the log, directly or by switching
# its triggers off first.
FORBIDDEN = [
    "ALTER TABLE events DISABLE TRIGGER ALL",
    "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
    "SET session_replication_role = replica",
    "DROP TRIGGER events_no_update_or_delete ON events",
    "DROP TRIGGER events_no_truncate ON events",
    "UPDATE events SET type = 'rewritten'",
    "DELETE FROM events",
    "TRUNCATE events",
    "DROP TABLE events",
    "ALTER TABLE events OWNER TO lead_ledger_app",
    (
        "CREATE OR REPLACE FUNCTION events_reject_change() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NULL; END; $$"
    ),
    "CREATE TABLE not_ours (x int)",
]


def _appends(count: int, prefix: str) -> list[StreamAppend]:
    return [
        StreamAppend(
            stream_id=f"{prefix}-{i}",
            expected_version=NO_STREAM,
            events=[NewEvent(event_id=uuid.uuid4(), type="noted", data=b'{"i": %d}' % i)],
        )
        for i in range(count)
    ]


async def _seed(conn: asyncpg.Connection, count: int = 2, prefix: str = "note") -> None:
    async with conn.transaction():
        await append_events(conn, _appends(count, prefix))


@pytest.mark.parametrize("sql", FORBIDDEN)
async def test_the_service_role_may_not_rewrite_the_log(database_url: str, sql: str) -> None:
    """Each statement that could rewrite the log is refused to the service role for lack of
    privilege, before any trigger is asked."""
    conn = await connect(database_url)
    try:
        await _seed(conn)
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
            await conn.execute(sql)
        # The triggers answer with insufficient_privilege too; this must be the privilege check.
        assert "append-only" not in str(refused.value)
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
    finally:
        await conn.close()


async def test_the_service_role_is_neither_superuser_nor_owner(database_url: str) -> None:
    """The service logs in as a non-superuser that owns no table and is not the owner's member."""
    conn = await connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS role, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
            "FROM pg_roles WHERE rolname = current_user"
        )
        assert row is not None
        assert row["role"] == APP_ROLE
        assert not row["rolsuper"]
        assert not row["rolcreaterole"]
        assert not row["rolcreatedb"]
        assert not row["rolbypassrls"]
        assert not await conn.fetchval(
            "SELECT pg_has_role(current_user, tableowner, 'USAGE') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename = 'events'"
        )
        assert not await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'USAGE'))"
        )
        assert await conn.fetchval("SELECT pg_has_role(current_user, $1, 'MEMBER')", SERVICE_ROLE)
        assert not await warn_if_privileged(conn)
    finally:
        await conn.close()


async def test_the_service_role_appends_and_reads_events(database_url: str) -> None:
    """Appends by INSERT and by COPY (which draws positions from the log's sequence) work, and
    the events read back."""
    conn = await connect(database_url)
    try:
        await _seed(conn, 3, "small")
        await _seed(conn, COPY_THRESHOLD, "big")
        count = await conn.fetchval("SELECT count(*) FROM events")
        assert count == 3 + COPY_THRESHOLD
    finally:
        await conn.close()


async def test_the_service_grants_are_exactly_the_rule(owner_database_url: str) -> None:
    """Events: SELECT and INSERT; read-only tables: SELECT; the rest: DML without TRUNCATE,
    TRIGGER or REFERENCES; sequences: USAGE and SELECT. A second grant step changes nothing."""
    conn = await connect(owner_database_url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, c.relkind, array_agg(a.privilege_type ORDER BY a.privilege_type) "
            "FILTER (WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)) AS granted "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN LATERAL aclexplode(c.relacl) a ON true "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') GROUP BY 1, 2",
            SERVICE_ROLE,
        )
        granted = {row["relname"]: row["granted"] for row in rows}
        assert granted["events"] == ["INSERT", "SELECT"]
        assert granted["schema_migrations"] == ["SELECT"]
        assert granted["projection_checkpoints"] == ["SELECT"]
        assert granted["leads"] == ["DELETE", "INSERT", "SELECT", "UPDATE"]
        assert granted["job_queue"] == ["DELETE", "INSERT", "SELECT", "UPDATE"]
        assert granted["lead_ids"] == ["SELECT", "USAGE"]
        assert granted["events_position_seq"] == ["SELECT", "USAGE"]
        assert all(privileges for privileges in granted.values())
        assert await grant_service(conn) == 0
    finally:
        await conn.close()


async def test_a_grant_made_by_hand_is_taken_back_by_migrate(owner_database_url: str) -> None:
    """Whatever the service role was given beyond the rule, the next migrate revokes."""
    conn = await connect(owner_database_url)
    try:
        await conn.execute(f"GRANT TRUNCATE, UPDATE ON events TO {SERVICE_ROLE}")
        assert await migrate(conn) == []
        assert not await conn.fetchval(
            "SELECT has_table_privilege($1, 'events', 'TRUNCATE') "
            "OR has_table_privilege($1, 'events', 'UPDATE')",
            SERVICE_ROLE,
        )
    finally:
        await conn.close()


async def test_swapped_in_tables_are_granted_to_the_service(
    database_url: str, owner_database_url: str
) -> None:
    """After a rebuild swaps fresh tables in, the service writes to them at once."""
    owner = await connect(owner_database_url)
    try:
        await rebuild(owner)
    finally:
        await owner.close()
    conn = await connect(database_url)
    try:
        for table in ("leads", "contacts", "accounts", "jobs"):
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, 'INSERT') AND has_table_privilege($1, 'DELETE')",
                table,
            )
        assert await conn.fetchval(
            "SELECT relowner::regrole::text FROM pg_class WHERE relname = 'leads'"
        ) == (OWNER_ROLE)
    finally:
        await conn.close()


async def test_the_service_role_does_not_migrate(
    database_factory: Callable[..., Awaitable[str]], database_url: str
) -> None:
    """Up to date, its migrate does nothing; with a migration pending, it stops the start with
    what to run; on an empty database, likewise."""
    conn = await connect(database_url)
    try:
        assert await migrate(conn) == []
        pending = [*shipped_migrations(), Migration("9999_later.sql", "SELECT 1")]
        with pytest.raises(MigrationError, match="LEDGER_MIGRATION_DATABASE_URL"):
            await migrate(conn, pending)
    finally:
        await conn.close()
    empty = with_user(await database_factory(migrated=False), APP_ROLE)
    conn = await connect(empty)
    try:
        with pytest.raises(MigrationError, match=r"migration\(s\) pending"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_the_owner_is_warned_about(owner_database_url: str) -> None:
    """A service connected as the owner of `events` logs a warning that names the fix."""
    conn = await connect(owner_database_url)
    try:
        with structlog.testing.capture_logs() as logs:
            assert await warn_if_privileged(conn)
    finally:
        await conn.close()
    [warning] = [entry for entry in logs if entry["event"] == "service_role_privileged"]
    assert warning["log_level"] == "warning"
    assert warning["owns_events"]
    assert "LEDGER_MIGRATION_DATABASE_URL" in warning["fix"]


async def _start_logs(database_url: str, migration_url: str | None) -> list[str]:
    """The events an app logs while it starts and stops on these URLs."""
    app = create_app(
        Settings(db_pool_min=1, db_pool_max=2), database_url, migration_url=migration_url
    )
    server = TestServer(app)
    with structlog.testing.capture_logs() as logs:
        await server.start_server()
        await server.close()
    return [entry["event"] for entry in logs]


async def test_the_app_warns_once_when_it_serves_as_the_owner(
    database_url: str, owner_database_url: str
) -> None:
    """A single URL that owns the log: one warning at start. The service's role with the
    owner's migration URL: none, and the start migrates as the owner."""
    assert (await _start_logs(owner_database_url, None)).count("service_role_privileged") == 1
    assert "service_role_privileged" not in await _start_logs(database_url, owner_database_url)


async def test_a_database_from_before_the_roles_is_adopted(postgres_server_url: str) -> None:
    """A database the superuser created and migrated (the embedded layout before roles) goes to
    the owner role, and its service role then has exactly its grants; a second run is a no-op."""
    name = uuid.uuid4().hex[:8]
    database = f"ledger_old_layout_{name}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    try:
        superuser = await connect(with_database(postgres_server_url, database))
        try:
            await migrate(superuser)
            await _seed(superuser)
        finally:
            await superuser.close()

        urls = await prepare_embedded(postgres_server_url, database)
        assert urls.service == role_url(with_database(postgres_server_url, database), APP_ROLE)
        assert urls.migration == owner_url(with_database(postgres_server_url, database))
        owner = await connect(urls.migration)
        try:
            assert await migrate(owner) == []
            assert (
                await owner.fetchval(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname IN ('public', 'ledger_shadow') AND c.relkind IN ('r', 'S') "
                    "AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)",
                    OWNER_ROLE,
                )
                == 0
            )
            await rebuild(owner)  # the owner may now create and swap tables
        finally:
            await owner.close()
        service = await connect(urls.service)
        try:
            await _seed(service, 1, "after")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service.execute("ALTER TABLE events DISABLE TRIGGER ALL")
        finally:
            await service.close()
        # Processes starting at once queue on the roles lock; nothing is left to adopt.
        again = [prepare_embedded(postgres_server_url, database) for _ in range(3)]
        assert len(set(await asyncio.gather(*again))) == 1
    finally:
        admin = await asyncpg.connect(postgres_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()
