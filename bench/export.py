"""Exports: a 1,000,000-lead campaign as csv now and as of a past time, through a real server,
with the peak memory of the server and its workers, beside PostgreSQL's own csv COPY of the
same rows.

Run it from the repository root:

    .venv/bin/python bench/export.py
    .venv/bin/python bench/export.py --leads 200000 --small 20000
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/export.py

Two campaigns are seeded in process through `insert_leads` (not measured): a large one of
`--leads` and a small one of `--small`. Then a tenth of the large campaign's leads is updated,
after a moment `T` is taken, so an export as of `T` folds every lead's stream and shows the
values from before the updates. One `lead-ledger serve` runs the exports: each is timed from
`POST /v1/exports` to the last byte of its file downloaded, and the resident memory of the
server and its worker processes is sampled every 20 ms meanwhile (peak above their idle size,
for the small and the large campaign: flat memory means the two peaks are alike whatever the
rows). The baseline is
`COPY (SELECT the same columns FROM leads ...) TO STDOUT (FORMAT csv)` read by asyncpg into a
file: PostgreSQL writing the rows as csv with nothing else to do. Targets: >= 100,000 rows/s
now, >= 30,000 rows/s as of `T`, peak memory flat in the rows. Exit status 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import aiohttp
import psutil

from lead_ledger.ledger.database import connect, create_pool
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import accounts
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.leads import update_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context

if TYPE_CHECKING:
    from bench._support import (
        Sampler,
        bench_database,
        bench_server,
        machine_description,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        resident,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )
else:
    from _support import (
        Sampler,
        bench_database,
        bench_server,
        machine_description,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        resident,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )

ACCOUNT: Final = "bench"
LARGE, SMALL = "large", "small"
SEED_CHUNK: Final = 50_000
CTX: Final = Context(actor=Actor(dialect="admin"), request_id="bench")
# What the baseline copies out as csv: a lead's columns, in lead id order.
COPY_QUERY: Final = """
SELECT lead_id, campaign_id, status, phone_numbers, name, first_name, last_name, city, email,
       user_data, crm, agent, skill, priority, extra, entry_at, modified_at
FROM leads WHERE campaign_id = $1 ORDER BY lead_id
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads in the large campaign")
    parser.add_argument("--small", type=int, default=100_000, help="leads in the small campaign")
    return parser.parse_args()


async def seed(database_url: str, sizes: dict[str, int]) -> tuple[str, dict[str, int]]:
    """The account (a native key) and its campaigns filled; the key and the campaign ids."""
    conn = await connect(database_url)
    try:
        await seed_ozonetel_account(conn, ACCOUNT, list(sizes), accounts.RateLimitsInput())
        issued = await accounts.issue_credential(
            conn, CTX, ACCOUNT, accounts.NewCredential(api="native")
        )
        rows = await conn.fetch("SELECT campaign_id, name, account_id FROM campaigns")
    finally:
        await conn.close()
    ids = {row["name"]: row["campaign_id"] for row in rows}
    account_id: int = rows[0]["account_id"]
    pool = await create_pool(database_url, min_size=1, max_size=2)
    number = 0
    try:
        with KeyWorkers() as workers:
            for name, size in sizes.items():
                for start in range(0, size, SEED_CHUNK):
                    count = min(size, start + SEED_CHUNK) - start
                    leads = [
                        LeadFields(
                            phone_numbers=[f"5{number + n:09d}"],
                            name=f"Lead {number + n}",
                            city="Pune",
                            crm={"loan:amount": str(n)},
                        )
                        for n in range(count)
                    ]
                    number += count
                    async with pool.acquire() as pooled, write_transaction(pooled):
                        await insert_leads(
                            pooled,
                            CTX,
                            account_id=account_id,
                            campaign_id=ids[name],
                            rows=leads,
                            check_duplicates=False,
                            key_workers=workers,
                        )
    finally:
        await pool.close()
    return issued.key, ids


async def update_tenth(database_url: str, campaign_id: int) -> None:
    """A tenth of the campaign's leads renamed through the service (a LeadUpdated each), so
    the fold as of before them reads past events it must leave out."""
    conn = await connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT lead_id, account_id FROM leads WHERE campaign_id = $1 AND lead_id % 10 = 0",
            campaign_id,
        )
        ids = [row["lead_id"] for row in rows]
        for start in range(0, len(ids), 1000):
            patches = {lead_id: {"name": "Renamed"} for lead_id in ids[start : start + 1000]}
            async with write_transaction(conn):
                await update_leads(conn, CTX, account_id=rows[0]["account_id"], patches=patches)
    finally:
        await conn.close()


async def timed_export(
    session: aiohttp.ClientSession, base: str, key: str, pid: int, body: Mapping[str, object]
) -> tuple[float, int, int]:
    """(seconds from POST to the last byte, rows, peak RSS above the server's idle RSS)."""
    headers = {"Authorization": f"Bearer {key}"}
    idle = resident(psutil.Process(pid))
    sampler = Sampler(pid)
    sampling = asyncio.create_task(sampler.run())
    started = time.perf_counter()
    async with session.post(f"{base}/v1/exports", json=body, headers=headers) as response:
        view = await response.json()
    while view["state"] in ("queued", "running"):
        await asyncio.sleep(0.05)
        async with session.get(f"{base}/v1/exports/{view['export_id']}", headers=headers) as got:
            view = await got.json()
    if view["state"] != "done":
        raise RuntimeError(f"the export ended {view}")
    async with session.get(f"{base}/v1/exports/{view['export_id']}/file", headers=headers) as got:
        async for _ in got.content.iter_chunked(1 << 20):
            pass
    seconds = time.perf_counter() - started
    sampler.running = False
    await sampling
    return seconds, int(view["rows"]), max(sampler.peak - idle, 0)


async def copy_baseline(database_url: str, campaign_id: int) -> float:
    conn = await connect(database_url)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            await conn.copy_from_query(
                COPY_QUERY, campaign_id, output=Path(scratch) / "x.csv", format="csv"
            )
            return time.perf_counter() - started
    finally:
        await conn.close()


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    async with bench_server() as server, bench_database(server.url, "export") as url:
        print_pairs([*machine_description(), *await server_description(server.url)])
        started = time.perf_counter()
        key, ids = await seed(url, {LARGE: args.leads, SMALL: args.small})
        await asyncio.sleep(0.05)
        at = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await update_tenth(url, ids[LARGE])
        print(
            f"  seeded {args.leads + args.small:,} leads in {time.perf_counter() - started:.0f} s"
        )
        copy_seconds = await copy_baseline(url, ids[LARGE])
        results: list[tuple[str, float, int, int]] = []
        async with serve_processes(url, 1) as servers, aiohttp.ClientSession() as session:
            ((base, pid),) = servers
            await timed_export(session, base, key, pid, {"campaign": SMALL})  # warm
            for label, body in (
                (f"{SMALL} now", {"campaign": SMALL}),
                (f"{LARGE} now", {"campaign": LARGE}),
                (f"{LARGE} as of T", {"campaign": LARGE, "as_of": at.isoformat()}),
                (f"{SMALL} as of T", {"campaign": SMALL, "as_of": at.isoformat()}),
            ):
                seconds, rows, peak = await timed_export(session, base, key, pid, body)
                results.append((label, seconds, rows, peak))
    report(args, copy_seconds, results)


def report(
    args: argparse.Namespace, copy_seconds: float, results: Sequence[tuple[str, float, int, int]]
) -> None:
    print()
    rows = [["export (csv)", "rows", "seconds", "rows/s", "peak RSS above idle"]]
    rows.append(
        [
            "baseline: PostgreSQL COPY csv",
            f"{args.leads:,}",
            f"{copy_seconds:.2f}",
            f"{args.leads / copy_seconds:,.0f}",
            "",
        ]
    )
    for label, seconds, count, peak in results:
        rows.append([label, f"{count:,}", f"{seconds:.2f}", f"{count / seconds:,.0f}", mb(peak)])
    print_table(rows)
    by_label = {label: (seconds, count) for label, seconds, count, _ in results}
    now_seconds, now_rows = by_label[f"{LARGE} now"]
    then_seconds, then_rows = by_label[f"{LARGE} as of T"]
    now_rate, then_rate = now_rows / now_seconds, then_rows / then_seconds
    print()
    now_verdict = "PASS" if now_rate >= 100_000 else "FAIL"
    then_verdict = "PASS" if then_rate >= 30_000 else "FAIL"
    ratio = now_seconds / copy_seconds
    print(f"  now:   {now_rate:,.0f} rows/s, target >= 100,000: {now_verdict} ({ratio:.1f}x COPY)")
    print(f"  as of: {then_rate:,.0f} rows/s, target >= 30,000: {then_verdict}")
    print()
    print_notes(
        [
            "Seconds: POST /v1/exports to the file's last byte (the job, then the download).",
            (
                "Peak RSS: the resident memory of the serve process and its worker processes"
                " (the export workers included) above their size just before the export; the"
                " small and large campaigns' peaks side by side show whether memory grows with"
                " the rows."
            ),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
