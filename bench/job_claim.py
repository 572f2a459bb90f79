"""What a job claim costs with accounts taking turns, against the oldest job claimed alone.

Run it from the repository root:

    .venv/bin/python bench/job_claim.py
    .venv/bin/python bench/job_claim.py --queued 100 1000 10000 --accounts 7 --claims 20

For each depth, a scratch database's `job_queue` is filled with that many queued jobs spread over
`--accounts` accounts and 500 campaigns, with 20 more running under live leases (their worker
sessions gone, as after a crash, so the claim also looks at the dead ones), and ANALYZEd. Then
`CLAIM_NEXT` (lead_ledger/service/jobs/lifecycle.py: every claimable job ranked by its account's
turn) and the baseline, the same claim taking the oldest claimable job with no ranking (the claim
before accounts took turns), each claim in a transaction rolled back so the queue stays as it
is, alternated. The figure is the median claim time beside the baseline's. A claim is made once
a job (which lasts seconds), so the figure to read is milliseconds, not a ratio target.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING, Final

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import connect
from lead_ledger.ledger.locks import JOB_WORKER_NAMESPACE
from lead_ledger.service.jobs.lifecycle import CLAIM_NEXT

if TYPE_CHECKING:
    from bench._support import (
        bench_database,
        bench_server,
        machine_description,
        median,
        print_pairs,
        print_table,
        quiet_logs,
        server_description,
    )
else:
    from _support import (
        bench_database,
        bench_server,
        machine_description,
        median,
        print_pairs,
        print_table,
        quiet_logs,
        server_description,
    )

# The baseline: the claim as it was before accounts took turns, the oldest claimable job.
OLDEST_FIRST: Final = """
WITH alive AS MATERIALIZED (
    SELECT objid::bigint AS low FROM pg_locks
    WHERE locktype = 'advisory' AND classid = $3::bigint::oid AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
),
dead AS MATERIALIZED (
    SELECT job_id, attempts FROM job_queue
    WHERE state = 'running' AND lease_until >= now()
      AND (job_id & 4294967295) NOT IN (SELECT low FROM alive)
),
next AS (
    SELECT job_id FROM job_queue q
    WHERE available_at <= now()
      AND (state = 'queued'
           OR (state = 'running'
               AND (lease_until < now()
                    OR (job_id, attempts) IN (SELECT job_id, attempts FROM dead))))
      AND NOT EXISTS (
          SELECT 1 FROM job_queue r
          WHERE r.campaign_id = q.campaign_id AND r.state = 'running'
            AND r.lease_until >= now() AND r.job_id <> q.job_id
            AND (r.job_id & 4294967295) IN (SELECT low FROM alive))
    ORDER BY available_at, job_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE job_queue q
SET state = 'running', lease_owner = $1, lease_until = now() + make_interval(secs => $2),
    attempts = q.attempts + 1
FROM next WHERE q.job_id = next.job_id
RETURNING q.job_id, q.attempts, q.campaign_id,
    pg_try_advisory_lock(($3::bigint << 32) | (q.job_id & 4294967295)) AS alive
"""
FILL: Final = """
INSERT INTO job_queue (job_id, account_id, kind, campaign_id, state, lease_until)
SELECT i, 1 + i % $2, 'insert_leads', i % 500,
       CASE WHEN i > $1 THEN 'running' ELSE 'queued' END,
       CASE WHEN i > $1 THEN now() + interval '1 hour' END
FROM generate_series(1, $1 + 20) AS i
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--accounts", type=int, default=7)
    parser.add_argument("--claims", type=int, default=20, help="claims of each kind per depth")
    return parser.parse_args()


async def _timed(conn: Connection, sql: str) -> float:
    """One claim's milliseconds, in a transaction rolled back: the queue stays as it was."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        started = time.perf_counter()
        await conn.fetchrow(sql, "bench", 60.0, JOB_WORKER_NAMESPACE)
        return (time.perf_counter() - started) * 1000
    finally:
        await transaction.rollback()


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    rows = [["queued jobs", "claim, turns (median ms)", "baseline: oldest first (median ms)"]]
    async with bench_server() as server:
        print("Job claims: accounts taking turns against the oldest job first")
        print_pairs([*machine_description(), *await server_description(server.url)])
        async with bench_database(server.url, "bench_claim") as url:
            conn = await connect(url)
            try:
                for queued in args.queued:
                    await conn.execute("TRUNCATE job_queue")
                    await conn.execute(FILL, queued, args.accounts)
                    await conn.execute("ANALYZE job_queue")
                    turns: list[float] = []
                    oldest: list[float] = []
                    for _ in range(args.claims):
                        turns.append(await _timed(conn, CLAIM_NEXT))
                        oldest.append(await _timed(conn, OLDEST_FIRST))
                    rows.append([f"{queued:,}", f"{median(turns):.2f}", f"{median(oldest):.2f}"])
            finally:
                await conn.close()
    print()
    print_table(rows)


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
