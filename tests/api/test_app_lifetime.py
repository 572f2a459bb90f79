"""What the app owns lives exactly as long as the app: its phone key workers and job kinds."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiohttp.test_utils import TestServer

from lead_ledger.api.app import create_app
from lead_ledger.api.keys import JOB_KINDS, KEY_WORKERS
from lead_ledger.service.job_kinds import job_kinds
from lead_ledger.settings import Settings


def _ended(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:  # noqa: PTH123 - a one-line read
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")  # noqa: PTH110
async def test_warm_key_workers_start_with_the_app_and_end_with_it(database_url: str) -> None:
    """Warmed, the app's key workers run once it has started and are gone once it has stopped;
    its job worker runs every kind job_kinds() lists."""
    app = create_app(Settings(db_pool_min=1, db_pool_max=2), database_url, warm_key_workers=True)
    server = TestServer(app)
    await server.start_server()
    try:
        key_workers = app[KEY_WORKERS]
        pids = key_workers.pids()
        assert len(pids) == (key_workers.count if key_workers.count > 1 else 0)
        kinds = app[JOB_KINDS]
        assert set(kinds) == set(job_kinds())
    finally:
        await server.close()
    for _ in range(100):  # closing waits for each worker; allow 5 s for /proc to catch up
        if all(_ended(pid) for pid in pids):
            break
        await asyncio.sleep(0.05)
    assert all(_ended(pid) for pid in pids)
    assert key_workers.pids() == []


async def test_an_app_not_warmed_starts_no_key_worker(database_url: str) -> None:
    """Without warm_key_workers (tests, benches) no worker process starts until a large batch."""
    app = create_app(Settings(db_pool_min=1, db_pool_max=2), database_url)
    server = TestServer(app)
    await server.start_server()
    try:
        assert app[KEY_WORKERS].pids() == []
    finally:
        await server.close()
