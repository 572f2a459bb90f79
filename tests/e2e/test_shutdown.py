"""Stopping a real `serve` with a request in flight that cannot finish in the grace period: the
process exits on time, and the cut request writes nothing."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import asyncpg

from tests.api.test_ozonetel_add import PATH, body, make_account
from tests.support import Client, serve_process, until_ready

GRACE = 2  # seconds, LEDGER_SHUTDOWN_SECONDS


async def _lock_waiters(pool: asyncpg.Pool) -> int:
    found: int = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return found


async def test_a_request_cut_at_shutdown_writes_nothing_and_the_process_ends_on_time(
    client: Client, pool: asyncpg.Pool, database_url: str
) -> None:
    """An AddCampaignData held behind a table lock past the grace period: SIGTERM ends the
    process within the grace period and a little more, the client's connection is closed
    without an answer, and once the lock is gone the lead is not there."""
    acme = await make_account(client)
    await client.close()
    served = serve_process(database_url, LEDGER_SHUTDOWN_SECONDS=str(GRACE))
    try:
        await until_ready(served)
        async with pool.acquire() as locker, aiohttp.ClientSession() as session:
            await locker.execute("BEGIN; LOCK TABLE leads IN ACCESS EXCLUSIVE MODE")
            sent = asyncio.create_task(
                session.post(
                    served.base_url + PATH,
                    json=body(acme, phoneNumber="6999999009"),
                    headers={"apiKey": acme.key},
                )
            )
            for _ in range(1000):
                if await _lock_waiters(pool):
                    break
                await asyncio.sleep(0.01)
            started = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(served.process.wait, 30)
            took = time.monotonic() - started
            try:
                response = await sent
                answered: int | None = response.status
            except aiohttp.ClientError:
                answered = None
            await locker.execute("ROLLBACK")
        assert code == 0
        assert took < 3 * GRACE + 5, took
        assert answered is None
        assert await pool.fetchval("SELECT count(*) FROM leads") == 0
    finally:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()
