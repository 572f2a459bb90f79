"""Database roles: the owner migrates, the service may only do what serving needs.

The service's role must not be able to rewrite the log: a superuser or the owner of `events` can
disable its triggers (`ALTER TABLE ... DISABLE TRIGGER`, `session_replication_role = replica`,
`DROP TRIGGER`) and then update or delete events. So the tables belong to `lead_ledger_owner`,
which only migrations and projection rebuilds use, and the service logs in as a member of the
NOLOGIN group `lead_ledger_service`, which holds exactly the grants below (docs/operations.md,
"Database roles and privileges").
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import structlog

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.locks import LOCK_SESSION, UNLOCK_SESSION, roles_lock_key

SERVICE_ROLE: Final = "lead_ledger_service"  # NOLOGIN group: the grants are made to it
OWNER_ROLE: Final = "lead_ledger_owner"  # owns the database and its tables (embedded default)
APP_ROLE: Final = "lead_ledger_app"  # logs in, member of SERVICE_ROLE (embedded default)

# What the service may do, per table. The log is append-only: read and insert, nothing else.
# Tables only migrations and rebuilds write are read-only. Every other table in `public` is
# service state or a projection the service writes inline: full DML, but never TRUNCATE,
# TRIGGER or REFERENCES, which are the owner's. New tables fall under that rule on the next
# migrate, so a migration that adds one needs no grant of its own.
APPEND_ONLY: Final = frozenset({"events"})
READ_ONLY: Final = frozenset({"schema_migrations", "projection_checkpoints"})
TABLE_READ: Final = frozenset({"SELECT"})
TABLE_APPEND: Final = frozenset({"SELECT", "INSERT"})
TABLE_WRITE: Final = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
SEQUENCE_USE: Final = frozenset({"USAGE", "SELECT"})

SELECT_GRANTS: Final = """
SELECT c.relname, c.relkind::text,
       coalesce(array_agg(a.privilege_type) FILTER (WHERE a.grantee = r.oid), '{}') AS granted
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (SELECT oid FROM pg_roles WHERE rolname = $1) r
LEFT JOIN LATERAL aclexplode(c.relacl) a ON true
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S')
GROUP BY c.relname, c.relkind
ORDER BY c.relname
"""
ROLE_EXISTS: Final = "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)"
PRIVILEGED: Final = """
SELECT r.rolsuper,
       coalesce((SELECT pg_has_role(current_user, t.tableowner, 'USAGE') FROM pg_tables t
                 WHERE t.schemaname = 'public' AND t.tablename = 'events'), false) AS owns_events,
       current_user
FROM pg_roles r WHERE r.rolname = current_user
"""

# What a role created (or a membership granted) by a session that holds no lock looks like.
_TAKEN: Final = (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError)

log = structlog.get_logger(__name__)


def with_user(url: str, user: str) -> str:
    """The same URL logging in as `user`, without a password (the embedded server trusts local
    connections; an external server's URLs are the operator's, never rewritten)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


def _wanted(name: str, kind: str) -> frozenset[str]:
    if kind == "S":
        return SEQUENCE_USE
    if name in APPEND_ONLY:
        return TABLE_APPEND
    if name in READ_ONLY:
        return TABLE_READ
    return TABLE_WRITE


async def grant_service(conn: Connection, tables: Iterable[str] | None = None) -> int:
    """Make `lead_ledger_service`'s grants on `public` exactly the rule above; return how many
    statements that took. Idempotent, and a no-op when nothing differs (a GRANT rewrites the
    catalog row even when it changes nothing). Without the group role (a single-URL deployment
    whose operator made none) there is nothing to grant to. Run by the tables' owner, under the
    migration lock: concurrent GRANTs on one table fail with "tuple concurrently updated"."""
    if not await conn.fetchval(ROLE_EXISTS, SERVICE_ROLE):
        return 0
    only = None if tables is None else set(tables)
    statements = []
    if not await conn.fetchval("SELECT has_schema_privilege($1, 'public', 'USAGE')", SERVICE_ROLE):
        statements.append(f"GRANT USAGE ON SCHEMA public TO {SERVICE_ROLE}")
    for name, kind, granted in await conn.fetch(SELECT_GRANTS, SERVICE_ROLE):
        if only is not None and name not in only:
            continue
        what = "SEQUENCE" if kind == "S" else "TABLE"
        wanted, have = _wanted(name, kind), frozenset(granted)
        if extra := sorted(have - wanted):
            statements.append(
                f'REVOKE {", ".join(extra)} ON {what} public."{name}" FROM {SERVICE_ROLE}'
            )
        if missing := sorted(wanted - have):
            statements.append(
                f'GRANT {", ".join(missing)} ON {what} public."{name}" TO {SERVICE_ROLE}'
            )
    for statement in statements:
        await conn.execute(statement)
    if statements:
        log.info("service_grants_updated", role=SERVICE_ROLE, statements=len(statements))
    return len(statements)


async def warn_if_privileged(conn: Connection) -> bool:
    """Log a warning when the service connects as a superuser or as the owner of `events`: either
    can switch the log's triggers off and rewrite it. Return whether it did."""
    row = await conn.fetchrow(PRIVILEGED)
    if row is None or not (row["rolsuper"] or row["owns_events"]):
        return False
    log.warning(
        "service_role_privileged",
        role=row["current_user"],
        superuser=row["rolsuper"],
        owns_events=row["owns_events"],
        fix="connect the service as a member of lead_ledger_service (LEDGER_DATABASE_URL) and "
        "migrate as the owner (LEDGER_MIGRATION_DATABASE_URL); see docs/operations.md, "
        "'Database roles and privileges'",
    )
    return True


async def ensure_roles(admin: Connection) -> None:
    """Create the owner, the service group and the app login role if missing (needs a superuser
    or CREATEROLE). Safe when several processes start at once: they queue on an advisory lock,
    and a role another session created meanwhile (one without the lock) is not an error."""
    async with roles_locked(admin):
        for role, options in (
            (SERVICE_ROLE, "NOLOGIN"),
            (OWNER_ROLE, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
            (APP_ROLE, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
        ):
            if not await admin.fetchval(ROLE_EXISTS, role):
                with contextlib.suppress(*_TAKEN):
                    await admin.execute(f"CREATE ROLE {role} {options}")
        is_member = await admin.fetchval(
            "SELECT pg_has_role($1, $2, 'MEMBER')", APP_ROLE, SERVICE_ROLE
        )
        if not is_member:
            with contextlib.suppress(*_TAKEN):
                await admin.execute(f"GRANT {SERVICE_ROLE} TO {APP_ROLE}")


@contextlib.asynccontextmanager
async def roles_locked(admin: Connection) -> AsyncIterator[None]:
    """Held while roles are created or objects change owner: both rewrite catalog rows, which
    concurrent sessions would fail on ("tuple concurrently updated"). Advisory locks are per
    database, so every process takes it in the same (the admin URL's) database. Reentrant."""
    key = roles_lock_key()
    await admin.execute(LOCK_SESSION, key)
    try:
        yield
    finally:
        await admin.execute(UNLOCK_SESSION, key)


# Objects of a database created before the roles existed, owned by whoever created them then
# (the embedded superuser): what `adopt` hands to the owner role. Sequences that belong to a
# column follow their table and cannot be moved on their own.
SELECT_FOREIGN_OWNED: Final = """
SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                      WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
       c.oid::regclass::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname IN ('public', 'ledger_shadow') OR n.nspname LIKE 'ledger\\_old\\_%')
  AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
        AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT 'FUNCTION', p.oid::regprocedure::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)
UNION ALL
SELECT 'SCHEMA', quote_ident(n.nspname)
FROM pg_namespace n
WHERE (n.nspname = 'ledger_shadow' OR n.nspname LIKE 'ledger\\_old\\_%')
  AND n.nspowner <> (SELECT oid FROM pg_roles WHERE rolname = $1)
"""


async def adopt(conn: Connection, owner: str = OWNER_ROLE) -> int:
    """Give `owner` the lead-ledger objects of the connected database that another role owns;
    return how many. Run as a superuser under the roles lock. REASSIGN OWNED cannot do it: it
    refuses objects of the bootstrap superuser, which is who created them."""
    moved = 0
    for kind, name in await conn.fetch(SELECT_FOREIGN_OWNED, owner):
        await conn.execute(f"ALTER {kind} {name} OWNER TO {owner}")
        moved += 1
    if moved:
        log.info("database_objects_adopted", owner=owner, objects=moved)
    return moved
