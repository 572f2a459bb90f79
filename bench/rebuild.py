"""Projection rebuild throughput: replay a log of 1,000,000 lead events into every projection.

Run it from the repository root:

    .venv/bin/python bench/rebuild.py
    .venv/bin/python bench/rebuild.py --inserts 200000 --updates 50000 --rounds 1
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/rebuild.py

The log (LeadInserted over 4 campaigns in 2 accounts, then LeadUpdated of distinct leads) is
COPYed straight into `events` of a scratch database: seeding is not what is measured. Each round
is a full `rebuild` of all projections, timed per phase: reading the subject keys, opening the
events the set-based SQL path applies (their personal data is sealed), the SQL path itself
(lead streams, two partitions on two connections), read + decode and fold (the Python fold of
the rest), COPY, indexes (two lanes), catch-up, swap.
The first round swaps out empty live tables, later ones full ones. After each round, the
baseline: every event read with a cursor and COPYed into an unlogged table. Targets: >= 100,000
events/s, and >= 1.2x the baseline's rate; the memory the rebuild adds stays flat in the log's
size.
Exit status 0 either way: a measurement to read, not a test to gate on.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
import uuid
from typing import TYPE_CHECKING, Final, NamedTuple

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.database import create_pool
from lead_ledger.ledger.envelope import METADATA_ENCODER, Actor, EventMetadata
from lead_ledger.ledger.event_ids import new_event_id
from lead_ledger.ledger.events import (
    AccountCreated,
    AccountSettings,
    CampaignConfig,
    CampaignCreated,
    DomainEvent,
    FieldChange,
    LeadFields,
    LeadInserted,
    LeadUpdated,
    encode_event,
    stream_of_account,
    stream_of_lead,
)
from lead_ledger.ledger.sealing import seal_event, subjects_to_seal
from lead_ledger.projections.rebuild import RebuildReport, rebuild

if TYPE_CHECKING:
    # mypy checks bench/ as the namespace package `bench`; run as a script, bench/ itself is on
    # sys.path. Both name the same file.
    from bench._support import (
        COPY_COLUMNS,
        PeakMemory,
        bench_database,
        bench_server,
        checkpoint,
        machine_description,
        median,
        print_pairs,
        print_table,
        quiet_logs,
        read_and_copy_baseline,
        server_description,
    )
else:
    from _support import (
        COPY_COLUMNS,
        PeakMemory,
        bench_database,
        bench_server,
        checkpoint,
        machine_description,
        median,
        print_pairs,
        print_table,
        quiet_logs,
        read_and_copy_baseline,
        server_description,
    )

TARGET: Final = 100_000  # events/s
RATIO_TARGET: Final = 1.2  # x the read-and-COPY baseline of the same round (issue 18)
CHUNK: Final = 100_000  # events per seeding transaction
CITIES: Final = ("Pune", "Delhi", "Mumbai", "Chennai", None)

EventRow = tuple[uuid.UUID, str, int, int, str, int, bytes, bytes]
KeyRow = tuple[str, int, bytes]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--inserts", type=int, default=800_000, help="LeadInserted events")
    parser.add_argument("--updates", type=int, default=200_000, help="LeadUpdated events")
    parser.add_argument("--rounds", type=int, default=2, help="rebuilds to run")
    parser.add_argument("--batch", type=int, default=20_000, help="events per keyset read")
    return parser.parse_args()


class Log(NamedTuple):
    """The events as stored (personal data sealed), and the subject keys that open them."""

    events: list[EventRow]
    keys: list[KeyRow]
    secrets: list[tuple[int, bytes]]


def event_rows(inserts: int, updates: int, seed: int = 1) -> Log:
    """The whole log in append order: two accounts with two campaigns each, then the leads,
    sealed as `record` seals them (one key per lead, digests of the dedupe keys)."""
    rng = random.Random(seed)
    metadata = METADATA_ENCODER.encode(EventMetadata(actor=Actor(dialect="native")))
    rows: list[EventRow] = []
    master = key_store.master_key()
    secrets = {account: subject_keys.new_data_key() for account in (1, 2)}
    digests = {account: subject_keys.digester(secret) for account, secret in secrets.items()}
    keys: dict[str, bytes] = {}
    key_rows: list[KeyRow] = []

    def add(stream: str, version: int, account: int, event: DomainEvent) -> None:
        event_id = new_event_id()
        for subject in subjects_to_seal(event, event_id):
            if subject not in keys:
                keys[subject] = subject_keys.new_data_key()
                wrapped = subject_keys.wrap(master, keys[subject])
                key_rows.append((subject, account, wrapped))
        sealed = seal_event(event, event_id, keys, digests[account])
        new = encode_event(sealed, event_id)
        rows.append((new.event_id, stream, version, account, new.type, 1, new.data, metadata))

    campaigns = []
    for account in (1, 2):
        add(
            stream_of_account(account),
            1,
            account,
            AccountCreated(
                account_id=account,
                name=f"bench-{account}",
                settings=AccountSettings(default_region="IN"),
            ),
        )
        for version, campaign in enumerate((account * 10 + 1, account * 10 + 2), start=2):
            config = CampaignConfig(name=f"c{campaign}", crm_fields=["crm:plan"])
            add(
                stream_of_account(account),
                version,
                account,
                CampaignCreated(account_id=account, campaign_id=campaign, config=config),
            )
            campaigns.append((account, campaign))
    for lead_id in range(1, inserts + 1):
        account, campaign = campaigns[lead_id % len(campaigns)]
        phone = f"9{lead_id:09d}"
        fields = LeadFields(
            phone_numbers=[phone],
            first_name=f"First{lead_id}",
            last_name=f"Last{rng.randrange(10_000)}",
            city=rng.choice(CITIES),
            email=f"lead{lead_id}@example.com",
            user_data=f"u{lead_id}" if rng.random() < 0.3 else None,
            crm={"crm:plan": rng.choice(("gold", "silver", "bronze"))},
            extra={"score": rng.randrange(100)},
        )
        inserted = LeadInserted(
            lead_id=lead_id,
            account_id=account,
            campaign_id=campaign,
            fields=fields,
            dedupe_keys=[f"+91{phone}"],
        )
        add(stream_of_lead(lead_id), 1, account, inserted)
    for lead_id in rng.sample(range(1, inserts + 1), min(updates, inserts)):
        account, _ = campaigns[lead_id % len(campaigns)]
        if rng.random() < 0.25:
            phone = f"8{lead_id:09d}"
            changes = [FieldChange("phone_numbers", [f"9{lead_id:09d}"], [phone])]
            updated = LeadUpdated(lead_id=lead_id, changes=changes, dedupe_keys=[f"+91{phone}"])
        else:
            changes = [
                FieldChange("city", None, rng.choice(CITIES)),
                FieldChange("status", "new", "called"),
            ]
            updated = LeadUpdated(lead_id=lead_id, changes=changes)
        add(stream_of_lead(lead_id), 2, account, updated)
    wrapped_secrets = [(a, subject_keys.wrap(master, secret)) for a, secret in secrets.items()]
    return Log(rows, key_rows, wrapped_secrets)


async def seed(url: str, log: Log, inserts: int) -> float:
    started = time.perf_counter()
    pool = await create_pool(url, min_size=1, max_size=1)
    rows = log.events
    try:
        async with pool.acquire() as conn:
            for i in range(0, len(rows), CHUNK):
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "events", records=rows[i : i + CHUNK], columns=list(COPY_COLUMNS)
                    )
            await conn.copy_records_to_table(
                "subject_keys",
                records=log.keys,
                columns=["subject_id", "account_id", "wrapped_key"],
            )
            await conn.copy_records_to_table(
                "account_secrets", records=log.secrets, columns=["account_id", "wrapped_secret"]
            )
            # The sequences the services draw ids from, past the ids used here.
            await conn.execute("SELECT setval('lead_ids', $1)", inserts)
            await conn.execute("SELECT setval('campaign_ids', 100)")
            await conn.execute("SELECT setval('account_ids', 10)")
            await conn.execute("VACUUM ANALYZE events")
            await checkpoint(conn)
    finally:
        await pool.close()
    return time.perf_counter() - started


class Round(NamedTuple):
    report: RebuildReport
    rss_growth: int  # bytes: the peak during the rebuild above this process's RSS before it
    baseline: float  # events/s of the read-and-COPY baseline run beside this round


async def measure(url: str, batch: int) -> Round:
    """One rebuild, its peak memory above where it began, then the read-and-COPY baseline."""
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        gc.collect()
        sampler = PeakMemory()
        before = sampler.process.memory_info().rss
        sampling = asyncio.create_task(sampler.run())
        try:
            report = await rebuild(pool, batch=batch)
        finally:
            sampler.running = False
            await sampling
    finally:
        await pool.close()
    rows, seconds = await read_and_copy_baseline(url)
    return Round(report, max(sampler.peak - before, 0), rows / seconds)


def figure(value: float, unit: str = "") -> str:
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2f}{unit}"


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    started = time.perf_counter()
    async with bench_server() as server:
        log = event_rows(args.inserts, args.updates)
        generated = time.perf_counter() - started
        print("Projection rebuild benchmark")
        print_pairs([*machine_description(), *await server_description(server.url)])
        print_pairs([("server", server.source)])
        async with bench_database(server.url, "bench_rebuild") as url:
            seeded = await seed(url, log, args.inserts)
            others = len(log.events) - args.inserts - args.updates
            described = (
                f"{len(log.events):,} events ({args.inserts:,} LeadInserted, "
                f"{args.updates:,} LeadUpdated, {others} account events)"
            )
            print_pairs(
                [
                    ("log", described),
                    ("seeding", f"{generated:.1f} s to seal, {seeded:.1f} s to COPY"),
                ]
            )
            del log
            rounds = [await measure(url, args.batch) for _ in range(args.rounds)]
    reports = [r.report for r in rounds]
    phases = ["open", "sql", "read+decode", "fold", "copy", "index", "catch-up", "swap"]
    table = [
        ["round", "events", "seconds", "events/s", "baseline/s", "ratio", "RSS +MiB"]
        + [f"{p} s" for p in phases]
    ]
    for i, (r, grown, baseline) in enumerate(rounds, start=1):
        table.append(
            [
                str(i),
                f"{r.events + r.caught_up:,}",
                f"{r.seconds:.2f}",
                figure(r.events_per_second),
                figure(baseline),
                f"{r.events_per_second / baseline:.2f}x",
                f"{grown / 2**20:,.0f}",
                *[f"{r.timings.get(p, 0.0):.2f}" for p in phases],
            ]
        )
    print()
    print_table(table)
    print()
    rows_copied = ", ".join(f"{k}={v:,}" for k, v in reports[-1].rows.items() if v)
    # Judged on the median round, not the best: one lucky round on a shared machine proves little.
    typical = median([r.events_per_second for r in reports])
    ratio = median([r.report.events_per_second / r.baseline for r in rounds])
    best = max(r.events_per_second for r in reports)
    grown_mib = max(r.rss_growth for r in rounds) / 2**20
    print_pairs(
        [
            ("rows", rows_copied),
            ("in SQL", f"{reports[-1].events_in_sql:,} events applied by the set-based path"),
            ("baseline", "read every event with a cursor and COPY it into an unlogged table"),
            ("peak memory", f"+{grown_mib:,.0f} MiB above this process's RSS before a rebuild"),
            ("target", f">= {TARGET:,} events/s (issue 13); >= {RATIO_TARGET}x the baseline"),
            ("result", f"{'PASS' if typical >= TARGET else 'FAIL'} (median {typical:,.0f}/s)"),
            ("ratio", f"{'PASS' if ratio >= RATIO_TARGET else 'FAIL'} (median {ratio:.2f}x)"),
            ("best round", f"{best:,.0f} events/s"),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
