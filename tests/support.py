"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NamedTuple, TypeAlias

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from lead_ledger.ledger.connection import Connection

Client: TypeAlias = TestClient[web.Request, web.Application]


async def fresh_minute() -> None:
    """Wait out the last seconds of a minute: the rate limits count fixed one-minute windows, so
    a test that fills one must not straddle two."""
    second = datetime.now(UTC).second
    if second >= 55:
        await asyncio.sleep(61 - second)


class Served(NamedTuple):
    """A real `lead-ledger serve` process and the base URL it listens on."""

    process: subprocess.Popen[bytes]
    base_url: str


def serve_process(database_url: str, *, stderr: IO[bytes] | None = None, **env: str) -> Served:
    """Start `lead-ledger serve` on the test's database, on a free port of 127.0.0.1, with
    `env` (LEDGER_* names) on top of a clean environment; it logs warnings and worse only,
    unless `env` says otherwise, to `stderr` (the test's own by default)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    # The session's master key (tests/conftest.py), so the server opens what the tests wrote.
    master = os.environ.get("LEDGER_MASTER_KEY", "")
    environ |= {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_LOG_LEVEL": "warning",
        "LEDGER_MASTER_KEY": master,
    } | env
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [str(Path(sys.executable).parent / "lead-ledger"), "serve", "--port", str(port)],
        env=environ,
        stderr=stderr,
    )
    return Served(process, f"http://127.0.0.1:{port}")


async def until_ready(served: Served, seconds: float = 60) -> None:
    """Wait for /readyz to answer 200; fail at once if the process exits first."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert served.process.poll() is None, f"serve exited with {served.process.returncode}"
            try:
                async with session.get(f"{served.base_url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{served.base_url} was not ready within {seconds}s")


def stop(served: Served) -> None:
    """SIGTERM, then wait for a clean exit."""
    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=60)


@contextlib.contextmanager
def logged_statements(conn: Connection) -> Iterator[list[str]]:
    """The text of every statement `conn` runs inside the block, in order."""
    statements: list[str] = []

    def logged(record: asyncpg.connection.LoggedQuery) -> None:
        statements.append(record.query)

    conn.add_query_logger(logged)
    try:
        yield statements
    finally:
        conn.remove_query_logger(logged)


ADVISORY_WAITERS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
"""
WAITING_FOR_ADVISORY = """
SELECT wait_event_type = 'Lock' AND wait_event = 'advisory' FROM pg_stat_activity
WHERE pid = $1
"""


async def advisory_waiters(pool: asyncpg.Pool, count: int) -> None:
    """Returns once `count` backends wait for advisory locks (a test failure after 10 s)."""
    for _ in range(1000):
        if await pool.fetchval(ADVISORY_WAITERS) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} backends never waited for advisory locks")


async def waiting_for_lock(pool: asyncpg.Pool, pid: int) -> None:
    """Returns once the backend `pid` waits for an advisory lock (a test failure after 10 s)."""
    for _ in range(1000):
        if await pool.fetchval(WAITING_FOR_ADVISORY, pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")
