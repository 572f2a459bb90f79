"""A job worker in a process of its own, for the crash test: `python -m
tests.integration.job_worker_script <database_url> <worker_id> <lease_seconds>`."""

from __future__ import annotations

import asyncio
import signal
import sys

from lead_ledger.ledger.database import create_pool
from lead_ledger.service.job_kinds import job_kinds
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.worker import run_worker


async def main(database_url: str, worker_id: str, lease_seconds: float) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=3)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    # Like the app's worker, its large jobs compute phone keys in worker processes it owns.
    try:
        with KeyWorkers() as key_workers:
            await run_worker(
                pool,
                stop,
                kinds=job_kinds(key_workers),
                worker_id=worker_id,
                poll_seconds=0.1,
                lease_seconds=lease_seconds,
            )
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
