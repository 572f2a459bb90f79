"""Vicidial archive latency: archive 500 leads per request on a table of 1,000,000 live leads.

Run it from the repository root:

    .venv/bin/python bench/archive.py
    .venv/bin/python bench/archive.py --leads 200000 --requests 10
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/archive.py

Seeding (not measured) appends LeadInserted events through the store and the inline projections
in large batches, across 20 campaigns of one account. Then each request archives a fresh set of
500 random live leads with insert, update and delete all true (so each lead gets LeadArchived and
LeadDeleted), through the real HTTP route (the app on 127.0.0.1, an aiohttp client), and again
through the service function alone, the two interleaved request by request. A phase profile of
the service path follows. Target: median HTTP time <= 150 ms. Exit status 0 either way: a
measurement to read, not a test to gate on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

import aiohttp
import asyncpg
import msgspec
from aiohttp import web

from lead_ledger.api.app import create_app
from lead_ledger.api.auth import key_digest
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import create_pool
from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM, Actor
from lead_ledger.ledger.events import (
    AccountCreated,
    AccountSettings,
    CampaignConfig,
    CampaignCreated,
    CredentialIssued,
    DomainEvent,
    LeadFields,
    LeadInserted,
    stream_of_account,
    stream_of_lead,
)
from lead_ledger.ledger.lead import RowTimes, decide_archive
from lead_ledger.ledger.store import append_events
from lead_ledger.projections.registry import PROJECTIONS
from lead_ledger.service import leads, vicidial
from lead_ledger.service.leads import ArchiveCounts
from lead_ledger.service.writer import Context, PendingAppend, record, seal_appends, stream_append
from lead_ledger.settings import Settings

if TYPE_CHECKING:
    # mypy checks bench/ as the namespace package `bench`; run as a script, bench/ itself is on
    # sys.path. Both name the same file.
    from bench._support import (
        bench_database,
        bench_server,
        checkpoint,
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
        checkpoint,
        machine_description,
        median,
        print_pairs,
        print_table,
        quiet_logs,
        server_description,
    )

T = TypeVar("T")
TARGET_MS: Final = 150.0
BATCH: Final = 500
KEY: Final = "bench-vicidial-key"
ACCOUNT: Final = 1
CITIES: Final = ("Pune", "Delhi", "Mumbai", "Chennai", "Kolkata", None)
ALL: Final = {"insert_leads": True, "update_leads": True, "delete_leads": True}
CTX: Final = Context(
    actor=Actor(dialect="vicidial", account_id=ACCOUNT, credential_id="bench"), request_id="b"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leads", type=int, default=1_000_000, help="live leads to seed")
    parser.add_argument("--campaigns", type=int, default=20, help="campaigns they spread over")
    parser.add_argument("--requests", type=int, default=20, help="measured requests per path")
    parser.add_argument("--seed-batch", type=int, default=50_000, help="leads per seed append")
    return parser.parse_args()


# --- seeding --------------------------------------------------------------------------------------


async def seed(pool: asyncpg.Pool, total: int, campaigns: int, batch: int) -> float:
    """The account, its campaigns and key, then `total` leads through append + inline apply."""
    started = time.perf_counter()
    config: list[DomainEvent] = [
        AccountCreated(
            account_id=ACCOUNT, name="bench", settings=AccountSettings(default_region="IN")
        ),
        CredentialIssued(
            account_id=ACCOUNT,
            credential_id="bench",
            dialect="vicidial",
            key_sha256=key_digest(KEY),
        ),
        *(
            CampaignCreated(
                account_id=ACCOUNT, campaign_id=c, config=CampaignConfig(name=f"campaign-{c}")
            )
            for c in range(1, campaigns + 1)
        ),
    ]
    async with pool.acquire() as conn:
        async with conn.transaction():
            await _record(conn, [_append(stream_of_account(ACCOUNT), config, ANY_VERSION)])
        for first in range(1, total + 1, batch):
            last = min(first + batch, total + 1)
            appends = [
                _append(stream_of_lead(i), [_lead(i, campaigns)], NO_STREAM)
                for i in range(first, last)
            ]
            async with conn.transaction():
                await _record(conn, appends)
        await conn.execute("SELECT setval('lead_ids', $1)", total)
        await conn.execute("SELECT setval('campaign_ids', $1)", campaigns)
        await conn.execute("SELECT setval('account_ids', $1)", ACCOUNT)
        await conn.execute("VACUUM ANALYZE")
        await checkpoint(conn)
    return time.perf_counter() - started


def phone_of(lead_id: int) -> str:
    """The seeded lead's number (bench/erasure.py erases by it)."""
    return f"+9190{lead_id:08d}"


def _lead(lead_id: int, campaigns: int) -> LeadInserted:
    phone = phone_of(lead_id)
    return LeadInserted(
        lead_id=lead_id,
        account_id=ACCOUNT,
        campaign_id=lead_id % campaigns + 1,
        fields=LeadFields(
            phone_numbers=[phone],
            first_name=f"First{lead_id}",
            last_name=f"Last{lead_id % 997}",
            city=CITIES[lead_id % len(CITIES)],
            email=f"lead{lead_id}@example.com",
            user_data=f"ext-{lead_id}",
            comments="seeded by bench/archive.py",
        ),
        dedupe_keys=[phone],  # already E.164: what decide_insert would compute, without parsing
    )


def _append(stream: str, events: list[DomainEvent], expected: int) -> PendingAppend:
    return stream_append(CTX, stream, expected, events, account_id=ACCOUNT)


async def _record(conn: Connection, appends: list[PendingAppend]) -> None:
    await record(conn, appends)


# --- measuring ------------------------------------------------------------------------------------


def _body(ids: Sequence[int]) -> bytes:
    return msgspec.json.encode({**ALL, "lead_ids": list(ids)})


@contextlib.asynccontextmanager
async def serve(url: str) -> AsyncIterator[aiohttp.ClientSession]:
    """The real app on 127.0.0.1 (an ephemeral port) and a client session speaking to it."""
    app = create_app(Settings(db_pool_min=2, db_pool_max=4), url)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        headers = {"Authorization": f"Key={KEY}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(f"http://{host}:{port}", headers=headers) as session:
            yield session
    finally:
        await runner.cleanup()


async def http_once(session: aiohttp.ClientSession, ids: list[int]) -> float:
    """One POST /vicidial/leads/archive on a real socket, in milliseconds."""
    body = _body(ids)
    started = time.perf_counter()
    async with session.post("/vicidial/leads/archive", data=body) as response:
        answer = await response.json()
    elapsed = (time.perf_counter() - started) * 1000
    expected = {"select_count": BATCH, "insert_count": BATCH, "delete_count": BATCH}
    if response.status != 200 or any(answer.get(k) != v for k, v in expected.items()):
        raise SystemExit(f"unexpected answer {response.status}: {answer}")
    return elapsed


async def service_once(pool: asyncpg.Pool, ids: list[int]) -> float:
    """The same work through service.vicidial.archive alone (no HTTP, no auth, no body to
    parse), in ms."""
    request = vicidial.ArchiveRequest(
        insert_leads=True, update_leads=True, delete_leads=True, lead_ids=list(ids)
    )
    started = time.perf_counter()
    outcome = await vicidial.archive(pool, CTX, ACCOUNT, request)
    elapsed = (time.perf_counter() - started) * 1000
    if not isinstance(outcome, ArchiveCounts):
        raise SystemExit(f"unexpected answer: {outcome}")
    return elapsed


PHASES: Final = (
    "lock_live_leads",
    "load_leads",
    "live times",
    "decide",
    "seal",
    "append_events",
    *(f"project {p.name}" for p in PROJECTIONS),
    "commit",
)


async def profile(pool: asyncpg.Pool, ids: list[int]) -> dict[str, float]:
    """archive_leads' steps one by one, timed (milliseconds), committed like the real thing."""
    spent: dict[str, float] = {}

    async def timed(name: str, step: Awaitable[T]) -> T:
        started = time.perf_counter()
        result = await step  # a coroutine does nothing until awaited: the timing is its own
        spent[name] = spent.get(name, 0.0) + (time.perf_counter() - started) * 1000
        return result

    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        live = await timed("lock_live_leads", leads.lock_live_leads(conn, ACCOUNT, ids))
        states = await timed("load_leads", leads.load_leads(conn, live))
        rows = await timed("live times", conn.fetch(leads.SELECT_LIVE_TIMES, list(live)))
        started = time.perf_counter()
        appends = []
        for row in sorted(rows, key=lambda r: int(r["lead_id"])):
            state = states[row["lead_id"]]
            times = RowTimes(entry_at=row["entry_at"], modified_at=row["modified_at"])
            outcome = decide_archive(state, insert=True, update=True, delete=True, times=times)
            stream = stream_of_lead(state.lead_id)
            appends.append(
                stream_append(CTX, stream, state.version, outcome.events, account_id=ACCOUNT)
            )
        spent["decide"] = (time.perf_counter() - started) * 1000
        sealed = await timed("seal", seal_appends(conn, appends))
        result = await timed("append_events", append_events(conn, sealed))
        plain = [event for append in appends for _, event in append.events]
        pairs = list(zip(result.events, plain, strict=True))
        for projection in PROJECTIONS:
            await timed(f"project {projection.name}", projection.apply_live(conn, pairs))
        await timed("commit", transaction.commit())
    return spent


def summary(label: str, timings: Sequence[float]) -> list[str]:
    ordered = sorted(timings)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return [
        label,
        f"{median(ordered):.1f}",
        f"{p90:.1f}",
        f"{max(ordered):.1f}",
        f"{min(ordered):.1f}",
    ]


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    rng = random.Random(3)
    needed = BATCH * (2 * args.requests + 2 + 5)
    if needed > args.leads:
        raise SystemExit(f"--leads must be at least {needed} for fresh ids in every request")
    sample = rng.sample(range(1, args.leads + 1), needed)
    batches = [sample[i : i + BATCH] for i in range(0, needed, BATCH)]
    warmup, http_batches = batches[:2], batches[2 : 2 + args.requests]
    service_batches = batches[2 + args.requests : 2 + 2 * args.requests]
    profile_batches = batches[2 + 2 * args.requests :]

    async with bench_server() as server:
        print("Vicidial archive benchmark")
        print_pairs([*machine_description(), *await server_description(server.url)])
        print_pairs([("server", server.source)])
        async with bench_database(server.url, "bench_archive") as url:
            pool = await create_pool(url, min_size=1, max_size=2)
            try:
                seeded = await seed(pool, args.leads, args.campaigns, args.seed_batch)
                print_pairs(
                    [
                        ("live leads", f"{args.leads:,} over {args.campaigns} campaigns"),
                        ("seeding", f"{seeded:.1f} s (record: seal, append, project)"),
                    ]
                )
                # Interleaved, so both paths meet the same cache, WAL and checkpoint state
                # (the first writes after a checkpoint pay for full-page images).
                http, service = [], []
                async with serve(url) as session:
                    for ids in warmup:
                        await http_once(session, ids)
                    for http_ids, service_ids in zip(http_batches, service_batches, strict=True):
                        http.append(await http_once(session, http_ids))
                        service.append(await service_once(pool, service_ids))
                profiles = [await profile(pool, ids) for ids in profile_batches]
                remaining = await pool.fetchval("SELECT count(*) FROM leads")
            finally:
                await pool.close()
    print()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print_pairs([("load average", f"{load} (1/5/15 min, at the end)")])
    print()
    print_table(
        [
            ["path (500 leads/request)", "median ms", "p90 ms", "max ms", "min ms"],
            summary(f"HTTP POST /vicidial/leads/archive x{len(http)}", http),
            summary(f"service.vicidial.archive x{len(service)}", service),
        ]
    )
    print()
    print("  service phases (median of", len(profiles), "profiled requests):")
    rows = [["phase", "ms", "share"]]
    total = sum(statistics.median(p.get(name, 0.0) for p in profiles) for name in PHASES)
    for name in PHASES:
        value = statistics.median(p.get(name, 0.0) for p in profiles)
        rows.append([name, f"{value:.1f}", f"{100 * value / total:.0f}%"])
    rows.append(["total", f"{total:.1f}", "100%"])
    print_table(rows)
    print()
    result = median(http)
    verdict = "PASS" if result <= TARGET_MS else "FAIL"
    print_pairs(
        [
            ("live leads after", f"{remaining:,}"),
            ("target", f"median HTTP <= {TARGET_MS:.0f} ms"),
            ("result", f"{verdict} (median {result:.1f} ms)"),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
