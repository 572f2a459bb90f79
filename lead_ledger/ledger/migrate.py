"""Schema migrations: numbered SQL files shipped in `lead_ledger.migrations`.

Each file runs in its own transaction, under a session advisory lock so that several processes
starting at once apply each file exactly once. Applied files are recorded with a checksum; a
file that changed after it was applied stops the start, because the database no longer is what
the code believes it to be.

Only a role that may create tables (the owner) migrates. The service's role runs `migrate` too,
at start: it finds nothing pending and returns without a lock or any DDL, or stops the start
when a migration is pending, since it may not apply it. After the files, the owner brings the
service role's grants up to date (`roles.grant_service`), on every migrate, so tables added by
a migration and databases from before the roles existed are covered.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import structlog

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.errors import MigrationError
from lead_ledger.ledger.locks import LOCK_SESSION, UNLOCK_SESSION, migration_lock_key
from lead_ledger.ledger.roles import grant_service

_FILE_NAME: Final = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED: Final = "SELECT name, checksum FROM schema_migrations"
# Whether the connected role may migrate: create the first table, or own the existing ones.
MAY_MIGRATE: Final = """
SELECT CASE WHEN to_regclass('public.schema_migrations') IS NULL
            THEN has_schema_privilege('public', 'CREATE')
            ELSE pg_has_role((SELECT relowner FROM pg_class
                              WHERE oid = to_regclass('public.schema_migrations')), 'USAGE')
       END
"""
INSERT_APPLIED: Final = "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def shipped_migrations() -> list[Migration]:
    """The SQL files of this version, in order, read through importlib.resources."""
    package = resources.files("lead_ledger.migrations")
    found = [
        Migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in package.iterdir()
        if _FILE_NAME.match(entry.name)
    ]
    return sorted(found, key=lambda m: m.name)


NO_MIGRATIONS_TABLE: Final = "SELECT to_regclass('public.schema_migrations') IS NULL"


async def migrate(conn: Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet applied; return their names."""
    migrations = shipped_migrations() if migrations is None else migrations
    if not await conn.fetchval(MAY_MIGRATE):
        await _check_up_to_date(conn, migrations)
        return []
    key = migration_lock_key()
    await conn.execute(LOCK_SESSION, key)
    try:
        await conn.execute(CREATE_MIGRATIONS_TABLE)
        applied = {row["name"]: row["checksum"] for row in await conn.fetch(SELECT_APPLIED)}
        _check_history(applied, migrations)
        done = []
        for migration in migrations:
            if migration.name in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(INSERT_APPLIED, migration.name, migration.checksum)
            log.info("migration_applied", migration=migration.name)
            done.append(migration.name)
        await grant_service(conn)
        return done
    finally:
        await conn.execute(UNLOCK_SESSION, key)


async def _check_up_to_date(conn: Connection, migrations: list[Migration]) -> None:
    """For a role that may not migrate: every shipped migration must already be applied."""
    pending = await _pending(conn, migrations)
    if pending:
        role = await conn.fetchval("SELECT current_user")
        raise MigrationError(
            f"{len(pending)} migration(s) pending ({', '.join(pending)}), and role {role} may "
            "not apply them: run `lead-ledger migrate` with LEDGER_MIGRATION_DATABASE_URL set to "
            "the owner's URL (docs/operations.md, 'Database roles and privileges')"
        )


async def migrate_if_new(conn: Connection) -> list[str]:
    """Migrate a database that has no schema yet (nothing else can be using it); refuse one
    that has a schema with migrations pending, which only `migrate` and `serve` apply: some
    hold writes for a while (docs/operations.md, "Migrations"), and a command run to look at
    or change a few rows must not start them under the servers of an older version."""
    if not await conn.fetchval(MAY_MIGRATE):
        return await migrate(conn)  # checks that nothing is pending, as for the service role
    # Under the migration lock: a new database that `serve` or `migrate` is bringing up is
    # waited for, not taken for one with migrations pending (the lock is re-entrant, so
    # `migrate` below takes it again).
    key = migration_lock_key()
    await conn.execute(LOCK_SESSION, key)
    try:
        if await conn.fetchval(NO_MIGRATIONS_TABLE):
            return await migrate(conn)
        pending = await _pending(conn, shipped_migrations())
        if pending:
            raise MigrationError(
                f"{len(pending)} migration(s) pending ({', '.join(pending)}): run `lead-ledger"
                " migrate` (or start `lead-ledger serve`, which applies them) first"
                " (docs/operations.md, 'Migrations')"
            )
        return []
    finally:
        await conn.execute(UNLOCK_SESSION, key)


async def _pending(conn: Connection, migrations: list[Migration]) -> list[str]:
    """The shipped migrations not applied yet (MigrationError when the history disagrees)."""
    if await conn.fetchval(NO_MIGRATIONS_TABLE):
        applied: dict[str, str] = {}
    else:
        applied = {row["name"]: row["checksum"] for row in await conn.fetch(SELECT_APPLIED)}
    _check_history(applied, migrations)
    return [m.name for m in migrations if m.name not in applied]


def _check_history(applied: dict[str, str], migrations: list[Migration]) -> None:
    shipped = {m.name: m for m in migrations}
    for name, checksum in sorted(applied.items()):
        migration = shipped.get(name)
        if migration is None:
            raise MigrationError(
                f"the database has migration {name}, which this version of lead-ledger does not "
                "ship; it was migrated by a newer version"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {name} changed after it was applied (checksum {checksum[:12]} in the "
                f"database, {migration.checksum[:12]} in the file); refusing to start. "
                "Add a new migration instead of editing an applied one."
            )
