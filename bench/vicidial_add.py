"""Vicidial add_lead under load: two real servers, 32 clients, a campaign of 1,000,000 leads.

Run it from the repository root:

    .venv/bin/python bench/vicidial_add.py
    .venv/bin/python bench/vicidial_add.py --leads 200000 --seconds 10
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/vicidial_add.py

The campaign (a Vicidial list) is first filled with `--leads` leads through `insert_leads`, in
process (seeding is not measured). Then two `lead-ledger serve` processes take the load from
one aiohttp session in this process, half the clients on each: first the baseline, the same
route answering `function=version` (no login, no database: what the harness and the servers'
HTTP stack cost), then `add_lead` with `duplicate_check=DUPCAMP-DUPPHONEALTSYS`, every request
a new random number, so each one logs in (remembered after the first), takes the locks of every
campaign of the account, runs both duplicate searches and appends. Target: >= 800 requests/s
with p99 <= 50 ms. The exit status is 0 whether or not it is met: a measurement to read.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import aiohttp

from lead_ledger.api.vicidial_non_agent import PATH
from lead_ledger.ledger.database import connect, create_pool
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import accounts
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context

if TYPE_CHECKING:
    # mypy checks bench/ as the namespace package `bench`; run as a script, bench/ itself is on
    # sys.path. Both name the same file.
    from bench._support import (
        Phones,
        bench_database,
        bench_server,
        machine_description,
        print_pairs,
        quiet_logs,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )
    from bench.add_data import Tally, report
else:
    from _support import (
        Phones,
        bench_database,
        bench_server,
        machine_description,
        print_pairs,
        quiet_logs,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )
    from add_data import Tally, report

ACCOUNT: Final = "bench"
CAMPAIGN: Final = "bench"
USER: Final = "bench-vici"
PASSWORD: Final = "bench-password-1"  # noqa: S105 - a scratch database's user
SEED_CHUNK: Final = 50_000
CTX: Final = Context(actor=Actor(dialect="admin"), request_id="bench")
DUPLICATE_CHECK: Final = "DUPCAMP-DUPPHONEALTSYS"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads in the campaign")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured load first")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in all")
    parser.add_argument("--servers", type=int, default=2, help="server processes")
    return parser.parse_args()


async def seed(database_url: str, leads: int) -> int:
    """The account, its user and campaign, and `leads` leads in it; the campaign's id."""
    conn = await connect(database_url)
    try:
        user = accounts.NewUser(username=USER, password=PASSWORD)
        limits = accounts.RateLimitsInput()
        await seed_ozonetel_account(conn, ACCOUNT, [CAMPAIGN], limits, user)
        campaign_id: int = await conn.fetchval("SELECT campaign_id FROM campaigns")
        account_id: int = await conn.fetchval("SELECT account_id FROM campaigns")
    finally:
        await conn.close()
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        with KeyWorkers() as workers:
            for start in range(0, leads, SEED_CHUNK):
                rows = [
                    LeadFields(phone_numbers=[f"5{n:09d}"], first_name="Seed")
                    for n in range(start, min(leads, start + SEED_CHUNK))
                ]
                async with pool.acquire() as pooled, write_transaction(pooled):
                    await insert_leads(
                        pooled,
                        CTX,
                        account_id=account_id,
                        campaign_id=campaign_id,
                        rows=rows,
                        check_duplicates=False,
                        key_workers=workers,
                    )
    finally:
        await pool.close()
    return campaign_id


async def client(
    session: aiohttp.ClientSession,
    url: str,
    params: dict[str, str],
    phones: Phones | None,
    window: tuple[float, float],
    tally: Tally,
) -> None:
    """One client's requests until the window ends: add_lead with a new number each time (or
    the baseline's `version` when `phones` is None)."""
    measure_from, stop_at = window
    expected = "VERSION: " if phones is None else "SUCCESS: add_lead LEAD HAS BEEN ADDED"
    while (started := time.perf_counter()) < stop_at:
        data = dict(params)
        if phones is not None:
            data["phone_number"] = phones.next()
        try:
            async with session.post(url, data=data) as response:
                answer = await response.text()
                ok = response.status == 200 and answer.startswith(expected)
                problem = f"{response.status} {answer.strip()}"
        except aiohttp.ClientError as error:
            ok, problem = False, repr(error)
        elapsed = time.perf_counter() - started
        if started < measure_from:
            continue
        tally.latencies.append(elapsed)
        if not ok:
            tally.errors += 1
            tally.first_error = tally.first_error or problem


async def load(
    bases: Sequence[str], params: dict[str, str], args: argparse.Namespace, *, adds: bool
) -> Tally:
    tally = Tally()
    phones = Phones() if adds else None
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        measure_from = time.perf_counter() + args.warmup
        window = (measure_from, measure_from + args.seconds)
        await asyncio.gather(
            *(
                client(session, f"{bases[i % len(bases)]}{PATH}", params, phones, window, tally)
                for i in range(args.clients)
            )
        )
    return tally


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    print("Vicidial add_lead load: two lead-ledger serve processes, one database")
    async with bench_server() as server, bench_database(server.url, "bench_vici") as url:
        print_pairs([("server", server.source), *await server_description(server.url)])
        print_pairs(machine_description())
        started = time.perf_counter()
        campaign_id = await seed(url, args.leads)
        print_pairs([("seeded", f"{args.leads:,} leads in {time.perf_counter() - started:.0f} s")])
        add = {
            "function": "add_lead",
            "source": "bench",
            "user": USER,
            "pass": PASSWORD,
            "list_id": str(campaign_id),
            "first_name": "Bench",
            "duplicate_check": DUPLICATE_CHECK,
        }
        async with serve_processes(url, args.servers) as running:
            bases = [base for base, _ in running]
            print_pairs(
                [
                    ("servers", f"{len(bases)} (lead-ledger serve)"),
                    (
                        "load",
                        f"{args.clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s",
                    ),
                ]
            )
            baseline = await load(bases, {"function": "version"}, args, adds=False)
            tally = await load(bases, add, args, adds=True)
    print()
    print(f"  baseline: function=version through the same route ({args.clients} clients)")
    report(baseline, args.seconds, judged=False)
    print()
    print(f"  add_lead, duplicate_check={DUPLICATE_CHECK}, {args.leads:,} leads in the list")
    report(tally, args.seconds)


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
