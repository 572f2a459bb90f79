"""Growth: upload, add and archive on an empty ledger, then on one that holds `--leads` live
leads over 100 campaigns; then a rebuild and a verify of the grown ledger, and its disk use.

Run it from the repository root (the default seeds 10,000,000 leads: ~25 minutes here):

    .venv/bin/python bench/growth.py
    .venv/bin/python bench/growth.py --leads 500000
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/growth.py

One `lead-ledger serve` process runs the measurements, each phase twice (on the empty ledger
and on the grown one, in the same run): a 50,000-row Ozonetel csv upload timed from the request
to its callback; AddCampaignData with 32 clients for 10 s (bench/add_data.py's load); the
Vicidial archive of 500 leads of a 50,000-lead campaign, five times (median). The ledger grows
through the store's bulk path (`insert_leads`, the job's own, with the phone key workers), never
through SQL that bypasses the log. The rebuild of the grown ledger (every projection) runs in
this process, its resident memory sampled every 20 ms, beside its baseline: a plain asyncpg
read of the events table with a cursor, COPYed into a scratch table. Targets (issue 18): each
phase on the grown ledger within 1.3x of the empty one; the rebuild >= 1.2x the baseline's
events/s, its memory flat; verify under 3 minutes. Exit status 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Final

import aiohttp
import asyncpg
import msgspec

from lead_ledger.ledger.database import connect, create_pool
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.projections.rebuild import rebuild
from lead_ledger.projections.rebuild.verify import verify
from lead_ledger.service import accounts
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context

if TYPE_CHECKING:
    from bench._support import (
        PeakMemory,
        Phones,
        bench_database,
        bench_server,
        checkpoint,
        machine_description,
        median,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        read_and_copy_baseline,
        receiving,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )
    from bench.add_data import CAMPAIGN, Figures, load
    from bench.bulk_upload import ACCOUNT, Callbacks, csv_bytes, make_rows, ozonetel_upload
else:
    from _support import (
        PeakMemory,
        Phones,
        bench_database,
        bench_server,
        checkpoint,
        machine_description,
        median,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        read_and_copy_baseline,
        receiving,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )
    from add_data import CAMPAIGN, Figures, load
    from bulk_upload import ACCOUNT, Callbacks, csv_bytes, make_rows, ozonetel_upload

CTX: Final = Context(actor=Actor(dialect="admin"), request_id="bench-growth")
SEED_CHUNK: Final = 50_000
ARCHIVE_BATCH: Final = 500
GROWTH_TARGET: Final = 1.3
REBUILD_TARGET: Final = 1.2
VERIFY_TARGET_SECONDS: Final = 180.0
ALL: Final = {"insert_leads": True, "update_leads": True, "delete_leads": True}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=10_000_000, help="live leads to grow to")
    parser.add_argument("--campaigns", type=int, default=100, help="campaigns they spread over")
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the measured upload")
    parser.add_argument("--seconds", type=float, default=10.0, help="AddCampaignData load")
    parser.add_argument("--clients", type=int, default=32, help="AddCampaignData clients")
    parser.add_argument("--archives", type=int, default=5, help="archives of 500 leads a phase")
    return parser.parse_args()


class Phase(msgspec.Struct, frozen=True):
    """One ledger size's figures."""

    upload_seconds: float
    add: Figures
    archive_ms: float


async def measure(  # noqa: PLR0913, PLR0917 - one phase's whole setting
    session: aiohttp.ClientSession,
    base: str,
    keys: dict[str, str],
    receiver: Callbacks,
    callback_url: str,
    url: str,
    label: str,
    args: argparse.Namespace,
    phones: Phones,
) -> Phase:
    """The upload (into a new campaign), the add load, and archives of that campaign's leads."""
    campaign = f"upload-{label}"
    # Warm, as a user finds a running server: one small upload first (not measured).
    warm = csv_bytes(make_rows(1000, phones))
    await ozonetel_upload(
        session, base, keys["ozonetel"], f"warm-{label}", warm, "leads.csv", receiver, callback_url
    )
    data = csv_bytes(make_rows(args.rows, phones))
    timing = await ozonetel_upload(
        session, base, keys["ozonetel"], campaign, data, "leads.csv", receiver, callback_url
    )
    load_args = SimpleNamespace(clients=args.clients, warmup=1.0, seconds=args.seconds, campaigns=1)
    tally = await load([base], keys["ozonetel"], load_args, phones)  # type: ignore[arg-type]
    ids = await _lead_ids(url, campaign)
    archive: list[float] = []
    headers = {"Authorization": f"Key={keys['vicidial']}", "Content-Type": "application/json"}
    for n in range(args.archives):
        batch = ids[n * ARCHIVE_BATCH : (n + 1) * ARCHIVE_BATCH]
        body = msgspec.json.encode({**ALL, "lead_ids": batch})
        started = time.perf_counter()
        async with session.post(
            f"{base}/vicidial/leads/archive", data=body, headers=headers
        ) as response:
            answer = await response.json()
        archive.append((time.perf_counter() - started) * 1000)
        if response.status != 200 or answer.get("delete_count") != len(batch):
            raise RuntimeError(f"archive refused: {response.status} {answer}")
    return Phase(timing.completed, Figures(tally, args.seconds), median(archive))


async def _lead_ids(url: str, campaign: str) -> list[int]:
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT l.lead_id FROM leads l JOIN campaigns c USING (campaign_id)"
            " WHERE c.name = $1 ORDER BY l.lead_id",
            campaign,
        )
    finally:
        await conn.close()
    return [row["lead_id"] for row in rows]


async def seed_account(url: str, campaigns: Sequence[str]) -> tuple[dict[str, str], int]:
    conn = await connect(url)
    try:
        key = await seed_ozonetel_account(
            conn,
            ACCOUNT,
            campaigns,
            accounts.RateLimitsInput(ozonetel_add_per_minute=100_000, ozonetel_bulk_per_minute=100),
        )
        vicidial = await accounts.issue_credential(
            conn, CTX, ACCOUNT, accounts.NewCredential(api="vicidial")
        )
        account_id: int = await conn.fetchval("SELECT account_id FROM accounts LIMIT 1")
    finally:
        await conn.close()
    return {"ozonetel": key, "vicidial": vicidial.key}, account_id


async def grow(url: str, account_id: int, campaign_ids: list[int], leads: int) -> float:
    """`leads` live leads, round robin over the campaigns, through `insert_leads`; seconds."""
    started = time.perf_counter()
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        with KeyWorkers() as workers:
            for start in range(0, leads, SEED_CHUNK):
                count = min(leads, start + SEED_CHUNK) - start
                rows = [
                    LeadFields(phone_numbers=[f"7{start + n:09d}"], name=f"Lead {start + n}")
                    for n in range(count)
                ]
                campaign = campaign_ids[(start // SEED_CHUNK) % len(campaign_ids)]
                async with pool.acquire() as conn, write_transaction(conn):
                    await insert_leads(
                        conn,
                        CTX,
                        account_id=account_id,
                        campaign_id=campaign,
                        rows=rows,
                        check_duplicates=False,
                        key_workers=workers,
                    )
                if (start // SEED_CHUNK) % 20 == 19:
                    done = start + count
                    rate = done / (time.perf_counter() - started)
                    print(f"    {done:,} leads, {rate:,.0f} leads/s")
        async with pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE")
            await checkpoint(conn)
    finally:
        await pool.close()
    return time.perf_counter() - started


async def rebuild_and_verify(url: str) -> tuple[float, int, int, float]:
    """(rebuild events/s, its peak RSS, the RSS before it, verify seconds)."""
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        sampler = PeakMemory()
        before = sampler.process.memory_info().rss
        sampling = asyncio.create_task(sampler.run())
        report = await rebuild(pool)
        sampler.running = False
        await sampling
        checked = await verify(pool)
        if not checked.ok:
            raise RuntimeError("verify found differences after the rebuild")
    finally:
        await pool.close()
    return report.events_per_second, sampler.peak, before, checked.seconds


DISK: Final = """
SELECT c.relname AS name, pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC
"""


async def disk(url: str) -> list[asyncpg.Record]:
    conn = await connect(url)
    try:
        return await conn.fetch(DISK)
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    print(
        f"Growth: the empty ledger, then {args.leads:,} live leads over {args.campaigns} campaigns"
    )
    phones = Phones(seed=7)
    grown = [f"grown-{n}" for n in range(args.campaigns)]
    receiver = Callbacks()
    phases: dict[str, Phase] = {}
    async with (
        receiving({"/callback": receiver.receive}) as hooks,
        bench_server() as server,
        bench_database(server.url, "bench_growth") as url,
    ):
        callback_url = f"{hooks}/callback"
        print_pairs([("server", server.source), *await server_description(server.url)])
        print_pairs(machine_description())
        sizes_ = ("empty", "grown")
        names = [CAMPAIGN, *(f"{k}-{n}" for k in ("upload", "warm") for n in sizes_), *grown]
        keys, account_id = await seed_account(url, names)
        conn = await connect(url)
        try:
            ids = {r["name"]: r["campaign_id"] for r in await conn.fetch("TABLE campaigns")}
        finally:
            await conn.close()
        extra = {"LEDGER_CALLBACK_ALLOW_PRIVATE": "1"}
        for label in ("empty", "grown"):
            if label == "grown":
                print("  growing the ledger:")
                seconds = await grow(url, account_id, [ids[n] for n in grown], args.leads)
                print(f"  grown in {seconds:,.0f} s ({args.leads / seconds:,.0f} leads/s)")
            async with (
                serve_processes(url, 1, extra) as running,
                aiohttp.ClientSession() as session,
            ):
                base = running[0][0]
                phases[label] = await measure(
                    session, base, keys, receiver, callback_url, url, label, args, phones
                )
            print(f"  measured the {label} ledger")
        events, baseline_seconds = await read_and_copy_baseline(url)
        print(f"  baseline: {events:,} events read and COPYed in {baseline_seconds:.1f} s")
        rate, peak, before, verify_seconds = await rebuild_and_verify(url)
        sizes = await disk(url)
    report(args, phases, events / baseline_seconds, rate, peak - before, verify_seconds, sizes)


def report(
    args: argparse.Namespace,
    phases: dict[str, Phase],
    baseline_rate: float,
    rebuild_rate: float,
    rebuild_memory: int,
    verify_seconds: float,
    sizes: Sequence[asyncpg.Record],
) -> None:
    empty, grown = phases["empty"], phases["grown"]
    rows = [["phase", "empty ledger", f"{args.leads:,} leads", "grown / empty", "target"]]
    for name, a, b, unit in (
        ("csv upload (request to callback)", empty.upload_seconds, grown.upload_seconds, "s"),
        ("AddCampaignData req/s", empty.add.rate, grown.add.rate, ""),
        ("AddCampaignData p99", empty.add.p99, grown.add.p99, "ms"),
        ("archive of 500 (median)", empty.archive_ms, grown.archive_ms, "ms"),
    ):
        ratio = a / b if unit == "" else b / a  # grown's cost over empty's
        verdict = "PASS" if ratio <= GROWTH_TARGET else "FAIL"
        shown = ",.0f" if unit == "" else ",.2f"
        rows.append(
            [
                name,
                f"{a:{shown}} {unit}",
                f"{b:{shown}} {unit}",
                f"{ratio:.2f}x",
                f"<= {GROWTH_TARGET}x {verdict}",
            ]
        )
    print()
    print_table(rows)
    ratio = rebuild_rate / baseline_rate
    print()
    print_pairs(
        [
            ("baseline: read and COPY of the events", f"{baseline_rate:,.0f} events/s"),
            (
                "projections rebuild",
                (
                    f"{rebuild_rate:,.0f} events/s, {ratio:.2f}x the baseline"
                    f" (target >= {REBUILD_TARGET}x:"
                    f" {'PASS' if ratio >= REBUILD_TARGET else 'FAIL'}),"
                    f" peak RSS +{rebuild_memory / 1024 / 1024:,.0f} MB"
                ),
            ),
            (
                "projections verify",
                (
                    f"{verify_seconds:,.0f} s (target < {VERIFY_TARGET_SECONDS:.0f} s:"
                    f" {'PASS' if verify_seconds < VERIFY_TARGET_SECONDS else 'FAIL'})"
                ),
            ),
        ]
    )
    million = args.leads / 1_000_000
    print()
    table = [["table", "data MB / million leads", "indexes MB / million leads"]]
    table += [
        [
            row["name"],
            f"{row['table_bytes'] / 1024 / 1024 / million:,.0f}",
            f"{row['index_bytes'] / 1024 / 1024 / million:,.0f}",
        ]
        for row in sizes
        if row["table_bytes"] + row["index_bytes"] > 1024 * 1024
    ]
    total = sum(row["table_bytes"] + row["index_bytes"] for row in sizes)
    table.append(["all tables", "", f"{total / 1024 / 1024 / million:,.0f} (data and indexes)"])
    print_table(table)
    print()
    print_notes(
        [
            (
                "grown / empty: the grown ledger's cost over the empty one's (for req/s, the empty"
                " ledger's rate over the grown one's), each measured in this run."
            ),
            (
                "Rebuild memory: this process's peak resident memory during the rebuild above its"
                " size before it."
            ),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
