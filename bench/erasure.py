"""Erasure latency: erase one subject in a ledger of 1,000,000 leads.

Run it from the repository root:

    .venv/bin/python bench/erasure.py
    .venv/bin/python bench/erasure.py --leads 200000 --erasures 20
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/erasure.py

Seeding (not measured) is bench/archive.py's: 1,000,000 leads over 20 campaigns of one account,
through `record` (sealed, with their keys and lookup digests). Then, interleaved one by one, the
service's erasure of a random lead by its lead id, of another by its phone number (found
through the lookup digests), and, as the baseline, a one-field update of a third lead through
the same write path (lock, load, decide, seal, append, project, commit). Target: median erasure
<= 50 ms. Exit status 0 either way: a measurement to read, not a test to gate on.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

import asyncpg

from lead_ledger.ledger.database import create_pool
from lead_ledger.service.erasures import ErasureRequest, erase
from lead_ledger.service.leads import update_leads
from lead_ledger.service.transactions import write_transaction

if TYPE_CHECKING:
    # mypy checks bench/ as the namespace package `bench`; run as a script, bench/ itself is on
    # sys.path. Both name the same file.
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
    from bench.archive import ACCOUNT, CTX, phone_of, seed
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
    from archive import ACCOUNT, CTX, phone_of, seed

TARGET_MS: Final = 50.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=1_000_000, help="live leads to seed")
    parser.add_argument("--campaigns", type=int, default=20, help="campaigns they spread over")
    parser.add_argument("--erasures", type=int, default=30, help="measured erasures per kind")
    parser.add_argument("--seed-batch", type=int, default=50_000, help="leads per seed append")
    return parser.parse_args()


async def timed(step: Awaitable[object]) -> float:
    started = time.perf_counter()
    await step
    return (time.perf_counter() - started) * 1000


async def erase_one(pool: asyncpg.Pool, request: ErasureRequest, expected: int) -> float:
    async with pool.acquire() as conn:
        started = time.perf_counter()
        erasure = await erase(conn, CTX, ACCOUNT, request)
        spent = (time.perf_counter() - started) * 1000
    if erasure.subjects != expected:
        raise SystemExit(f"{request} erased {erasure.subjects} subjects, not {expected}")
    return spent


async def update_one(pool: asyncpg.Pool, lead_id: int, city: str) -> float:
    async with pool.acquire() as conn:
        started = time.perf_counter()
        async with write_transaction(conn):
            await update_leads(conn, CTX, account_id=ACCOUNT, patches={lead_id: {"city": city}})
        return (time.perf_counter() - started) * 1000


def row(label: str, values: list[float]) -> list[str]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return [label, f"{median(ordered):.1f}", f"{p90:.1f}", f"{ordered[-1]:.1f}"]


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    rng = random.Random(5)
    ids = rng.sample(range(1, args.leads + 1), 3 * args.erasures + 3)
    async with bench_server() as server:
        print("Erasure benchmark")
        print_pairs([*machine_description(), *await server_description(server.url)])
        print_pairs([("server", server.source)])
        async with bench_database(server.url, "bench_erasure") as url:
            pool = await create_pool(url, min_size=1, max_size=2)
            try:
                seeded = await seed(pool, args.leads, args.campaigns, args.seed_batch)
                keys = await pool.fetchval("SELECT count(*) FROM subject_keys")
                print_pairs(
                    [
                        ("ledger", f"{args.leads:,} leads over {args.campaigns} campaigns"),
                        ("subject keys", f"{keys:,}"),
                        ("seeding", f"{seeded:.1f} s (record: seal, append, project)"),
                    ]
                )
                # A warm-up of each, then interleaved: all three meet the same cache and WAL.
                by_id, by_phone, updates = [], [], []
                for i in range(args.erasures + 1):
                    lead, phoned, updated = ids[3 * i : 3 * i + 3]
                    spent = [
                        await erase_one(pool, ErasureRequest(lead_id=lead), 1),
                        await erase_one(pool, ErasureRequest(phone=phone_of(phoned)), 1),
                        await update_one(pool, updated, f"city-{i}"),
                    ]
                    if i:
                        by_id.append(spent[0])
                        by_phone.append(spent[1])
                        updates.append(spent[2])
                remaining = await pool.fetchval("SELECT count(*) FROM leads")
            finally:
                await pool.close()
    print()
    print_table(
        [
            ["operation (service, one transaction each)", "median ms", "p90 ms", "max ms"],
            row(f"erase by lead_id x{len(by_id)}", by_id),
            row(f"erase by phone x{len(by_phone)}", by_phone),
            row(f"baseline: update one field x{len(updates)}", updates),
        ]
    )
    print()
    worst = max(median(by_id), median(by_phone))
    verdict = "PASS" if worst <= TARGET_MS else "FAIL"
    both = f"by lead_id {median(by_id):.1f} ms, by phone {median(by_phone):.1f} ms"
    print_pairs(
        [
            ("live leads after", f"{remaining:,}"),
            ("ratio to baseline", f"{worst / median(updates):.2f}x (slower erasure / update)"),
            ("target", f"median erasure <= {TARGET_MS:.0f} ms"),
            (
                "result",
                f"{verdict} ({both})",
            ),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
