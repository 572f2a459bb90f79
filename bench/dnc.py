"""Do-not-call: importing entries, and what a large registry costs an insert.

Run it from the repository root:

    .venv/bin/python bench/dnc.py
    .venv/bin/python bench/dnc.py --entries 200000 --rows 50000 --rounds 3
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/dnc.py

Two accounts (region IN) on a scratch database. The import: `--entries` numbers added to the
first account's registry, account-wide, through what `lead-ledger dnc import` runs
(`service.dnc.add_entries`, 10,000 per transaction: sealed events, their keys, the view).
Target: 1,000,000 entries in <= 60 s. Then, alternating the two accounts round by round, an
insert of `--rows` new leads (no duplicate check: an Ozonetel file upload's path,
`insert_leads`, in process) into the account with the registry and into the one without; none
of the numbers is blocked, so both insert every row and the difference is the check itself.
Target: <= 10 % slower with the registry. Exit status 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING, Final

import asyncpg

from lead_ledger import cli_dnc
from lead_ledger.ledger.database import create_pool
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import accounts, dnc
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context

if TYPE_CHECKING:
    from bench._support import (
        bench_database,
        bench_server,
        machine_description,
        median,
        print_pairs,
        print_table,
        quiet_logs,
        seed_ozonetel_account,
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
        seed_ozonetel_account,
        server_description,
    )

IMPORT_TARGET_SECONDS: Final = 60.0
INSERT_TARGET: Final = 1.10
CTX: Final = Context(actor=Actor(dialect="admin"), request_id="bench-dnc")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries to import")
    parser.add_argument("--rows", type=int, default=50_000, help="leads per insert")
    parser.add_argument("--rounds", type=int, default=3, help="inserts per account")
    return parser.parse_args()


async def account_ids(pool: asyncpg.Pool) -> tuple[int, int]:
    limits = accounts.RateLimitsInput()
    async with pool.acquire() as conn:
        for name in ("listed", "unlisted"):
            await seed_ozonetel_account(conn, name, ["sales"], limits)
        rows = await conn.fetch(
            "SELECT a.name, c.campaign_id FROM accounts a JOIN campaigns c USING (account_id)"
        )
    by_name = {r["name"]: r["campaign_id"] for r in rows}
    return by_name["listed"], by_name["unlisted"]


async def import_entries(pool: asyncpg.Pool, account_id: int, count: int) -> float:
    entries = [dnc.NewDncEntry(phone=f"70{n:08d}") for n in range(count)]
    started = time.perf_counter()
    async with pool.acquire() as conn:
        await cli_dnc.import_entries(conn, CTX, account_id, entries)
    return time.perf_counter() - started


async def insert_round(
    pool: asyncpg.Pool, account_id: int, campaign_id: int, first: int, rows: int
) -> float:
    fields = [LeadFields(phone_numbers=[f"9{first + n:09d}"]) for n in range(rows)]
    async with pool.acquire() as conn:
        started = time.perf_counter()
        async with write_transaction(conn):
            result = await insert_leads(
                conn,
                CTX,
                account_id=account_id,
                campaign_id=campaign_id,
                rows=fields,
                check_duplicates=False,
            )
        spent = time.perf_counter() - started
    if len(result.inserted) != rows:
        raise SystemExit(f"inserted {len(result.inserted)} of {rows}")
    return spent


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    async with bench_server() as server:
        print("Do-not-call benchmark")
        print_pairs([*machine_description(), *await server_description(server.url)])
        print_pairs([("server", server.source)])
        async with bench_database(server.url, "bench_dnc") as url:
            pool = await create_pool(url, min_size=1, max_size=2)
            try:
                listed_campaign, unlisted_campaign = await account_ids(pool)
                ids = {
                    r["campaign_id"]: r["account_id"]
                    for r in await pool.fetch("SELECT campaign_id, account_id FROM campaigns")
                }
                seconds = await import_entries(pool, ids[listed_campaign], args.entries)
                entries = await pool.fetchval("SELECT count(*) FROM dnc")
                with_registry, without = [], []
                for i in range(args.rounds):
                    first = 2 * i * args.rows
                    with_registry.append(
                        await insert_round(
                            pool, ids[listed_campaign], listed_campaign, first, args.rows
                        )
                    )
                    without.append(
                        await insert_round(
                            pool,
                            ids[unlisted_campaign],
                            unlisted_campaign,
                            first + args.rows,
                            args.rows,
                        )
                    )
            finally:
                await pool.close()
    rate = entries / seconds
    projected = 1_000_000 / rate
    ratio = median(with_registry) / median(without)
    verdict = "PASS" if projected <= IMPORT_TARGET_SECONDS else "FAIL"
    print()
    print_table(
        [
            ["insert of", "registry", "rounds (s)", "median s"],
            [
                f"{args.rows:,} leads",
                f"{entries:,} entries",
                ", ".join(f"{s:.2f}" for s in with_registry),
                f"{median(with_registry):.2f}",
            ],
            [
                f"{args.rows:,} leads",
                "none",
                ", ".join(f"{s:.2f}" for s in without),
                f"{median(without):.2f}",
            ],
        ]
    )
    print()
    print_pairs(
        [
            ("import", f"{entries:,} entries in {seconds:.1f} s ({rate:,.0f}/s)"),
            ("import target", f"1,000,000 in <= {IMPORT_TARGET_SECONDS:.0f} s"),
            ("import result", f"{verdict} ({projected:.0f} s for 1,000,000 at this rate)"),
            ("insert ratio", f"{ratio:.3f} (with the registry / without)"),
            ("insert target", f"<= {INSERT_TARGET:.2f}"),
            ("insert result", "PASS" if ratio <= INSERT_TARGET else "FAIL"),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
