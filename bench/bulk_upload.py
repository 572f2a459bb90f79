"""Bulk uploads end to end: a 50,000-row csv and the same rows as xlsx through Ozonetel's file
upload, and 50,000 rows through Flexydial's bulk insert, each timed from the request to the
job's completion, against a raw COPY of as many events.

Run it from the repository root:

    .venv/bin/python bench/bulk_upload.py
    .venv/bin/python bench/bulk_upload.py --rows 50000 --rounds 3
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/bulk_upload.py

One `lead-ledger serve` process (the console script beside this interpreter, with its job worker
and callback dispatcher) runs against a scratch database, with LEDGER_CALLBACK_ALLOW_PRIVATE=1
so that its callbacks reach a receiver in this process. Ozonetel uploads are timed from the
multipart POST to the callback's arrival ({"status": "success", ...}); the Flexydial insert from
its POST to the first status check that answers "Completed" (checked every 10 ms). Every round
uses new campaigns and new numbers, and each result is checked in the database (one live lead
per row). The baseline is asyncpg's binary COPY of the upload's own LeadInserted events into a
table LIKE events with its indexes: the floor for writing that many events at all.
A second baseline is the eventsourcing library's PostgreSQL recorder saving the same rows as
one-event aggregates, 1,000 per transaction (bench/eventsourcing_peer.py; the bench extra).
Targets (issue 18, ratios to the baselines of the same run): csv <= 2.0x COPY and >= 2.5x the
peer's rows/s, xlsx <= 2.5x COPY, Flexydial <= 2.5x COPY. The exit status is 0 either way: a
measurement to read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import msgspec
import openpyxl
from aiohttp import web

from lead_ledger.ledger.database import connect
from lead_ledger.ledger.events import LeadInserted, tag_of
from lead_ledger.service import accounts

if TYPE_CHECKING:
    from bench import eventsourcing_peer
    from bench._support import (
        COPY_COLUMNS,
        CREATE_COPY_TABLE,
        Phones,
        Sampler,
        bench_database,
        bench_server,
        machine_description,
        median,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        receiving,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )
else:
    import eventsourcing_peer
    from _support import (
        COPY_COLUMNS,
        CREATE_COPY_TABLE,
        Phones,
        Sampler,
        bench_database,
        bench_server,
        machine_description,
        median,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        receiving,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )

ACCOUNT: Final = "bench"
USERNAME: Final = "bench-user"
PASSWORD: Final = "bench-password"  # noqa: S105 - a scratch database's login
# Issue 18's targets: at most this many times the seconds of the raw COPY of the same events.
COPY_TARGETS: Final = {"ozonetel csv": 2.0, "ozonetel xlsx": 2.5, "flexydial insert": 2.5}
# And the csv upload at least this many times the eventsourcing peer's rows/s.
PEER_TARGET: Final = 2.5
# A serve process stays under this through the uploads (its resident memory, sampled every 20 ms).
RSS_TARGET_MB: Final = 400
OZONETEL_PATH: Final = "/endpoint/dailer/data/bulk/upload"
FLEXYDIAL_PATH: Final = "/api/bulkphonebookupload/v1/"
HEADER: Final = ("PhoneNumber", "Name", "City", "CustomerId")
CITIES: Final = ("Mumbai", "Bengaluru", "Chennai", "Pune", "Delhi", "Kolkata")
SELECT_CAMPAIGN_EVENTS: Final = """
SELECT event_id, stream_id, stream_version, account_id, type, schema_version, data, metadata
FROM events WHERE type = $2 AND (data->>'campaign_id')::bigint = $1
"""
COUNT_LEADS: Final = """
SELECT count(*) FROM leads l JOIN campaigns c USING (campaign_id) WHERE c.name = $1
"""


@dataclass
class Timing:
    """One upload: seconds to the HTTP answer and to completion."""

    answered: float
    completed: float


@dataclass
class Results:
    timings: dict[str, list[Timing]] = field(default_factory=dict)
    copy_seconds: list[float] = field(default_factory=list)
    peer_seconds: list[float] = field(default_factory=list)
    # The serve process's peak resident memory over every upload: alone, and with its workers.
    peak_rss: tuple[int, int] = (0, 0)

    def add(self, case: str, timing: Timing) -> None:
        self.timings.setdefault(case, []).append(timing)


class Callbacks:
    """A receiver for the server's callbacks: one future per campaign name."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}

    def expect(self, campaign: str) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        future: asyncio.Future[tuple[float, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiting[campaign] = future
        return future

    async def receive(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        body = await request.json()
        future = self.waiting.pop(str(body.get("campaign")), None)
        if future is not None and not future.done():
            future.set_result((arrived, body))
        return web.json_response({"ok": True})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=50_000, help="rows per upload")
    parser.add_argument("--rounds", type=int, default=3, help="uploads of each kind")
    return parser.parse_args()


def make_rows(count: int, phones: Phones) -> list[tuple[str, str, str, str]]:
    return [
        (phones.next(), f"Lead {i}", CITIES[i % len(CITIES)], f"C{i:07d}") for i in range(count)
    ]


def csv_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def xlsx_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("leads")
    sheet.append(list(HEADER))
    for phone, name, city, customer in rows:
        sheet.append([int(phone), name, city, customer])  # numbers as Excel numbers, as exported
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def flexydial_body(campaign: str, rows: Sequence[Sequence[str]]) -> bytes:
    items = [
        {
            "numeric": phone,
            "first_name": name,
            "customer_info:city": city,
            "customer_info:customer_id": customer,
        }
        for phone, name, city, customer in rows
    ]
    return msgspec.json.encode({"campaign": campaign, "bulk_data": items})


async def seed(database_url: str, campaigns: Sequence[str]) -> str:
    """The account, its Ozonetel key, a Flexydial login, the campaigns, and a bulk limit that
    is counted but never reached."""
    conn = await connect(database_url)
    try:
        return await seed_ozonetel_account(
            conn,
            ACCOUNT,
            campaigns,
            accounts.RateLimitsInput(ozonetel_bulk_per_minute=1_000),
            accounts.NewUser(username=USERNAME, password=PASSWORD),
        )
    finally:
        await conn.close()


async def ozonetel_upload(
    session: aiohttp.ClientSession,
    base: str,
    key: str,
    campaign: str,
    data: bytes,
    filename: str,
    receiver: Callbacks,
    callback_url: str,
) -> Timing:
    form = aiohttp.FormData()
    form.add_field("username", ACCOUNT)
    form.add_field("apiKey", key)
    form.add_field("campaignName", campaign)
    form.add_field("callBackUrl", callback_url)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    arrival = receiver.expect(campaign)
    started = time.perf_counter()
    async with session.post(f"{base}{OZONETEL_PATH}", data=form) as response:
        answer = await response.json(content_type=None)
    answered = time.perf_counter()
    if answer != {"status": "success", "message": "Data processing"}:
        raise RuntimeError(f"{filename} upload refused: {response.status} {answer}")
    arrived, body = await asyncio.wait_for(arrival, timeout=300)
    if body.get("status") != "success":
        raise RuntimeError(f"{filename} upload failed: {body}")
    return Timing(answered=answered - started, completed=arrived - started)


async def flexydial_token(session: aiohttp.ClientSession, base: str) -> str:
    login = {"username": USERNAME, "password": PASSWORD}
    async with session.post(f"{base}/api/generate-token/", json=login) as response:
        answer = await response.json()
    if response.status != 200:
        raise RuntimeError(f"generate-token: {response.status} {answer}")
    token: str = answer["token"]
    return token


async def flexydial_insert(
    session: aiohttp.ClientSession, base: str, token: str, body: bytes
) -> Timing:
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    async with session.post(f"{base}{FLEXYDIAL_PATH}", data=body, headers=headers) as response:
        answer = await response.json()
    answered = time.perf_counter()
    if response.status != 201:
        raise RuntimeError(f"Flexydial insert refused: {response.status} {answer}")
    status_url = f"{base}/api/bulkphonebookupload/status/{answer['job_id']}/"
    while True:
        async with session.get(status_url, headers=headers) as response:
            status = await response.json()
        if status.get("status") == "Completed":
            return Timing(answered=answered - started, completed=time.perf_counter() - started)
        if not str(status.get("status", "")).startswith("Pending"):
            raise RuntimeError(f"Flexydial job ended with {status}")
        await asyncio.sleep(0.01)


async def copy_baseline(database_url: str, campaign: str) -> float:
    """Seconds for a binary COPY of the campaign's LeadInserted events into a LIKE table."""
    conn = await connect(database_url)
    try:
        campaign_id = await conn.fetchval(
            "SELECT campaign_id FROM campaigns WHERE name = $1", campaign
        )
        records = [
            tuple(r)
            for r in await conn.fetch(SELECT_CAMPAIGN_EVENTS, campaign_id, tag_of(LeadInserted))
        ]
        await conn.execute(CREATE_COPY_TABLE)
        await conn.execute("TRUNCATE events_copy")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("events_copy", records=records, columns=COPY_COLUMNS)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def check_leads(database_url: str, campaign: str, expected: int) -> None:
    conn = await connect(database_url)
    try:
        count = await conn.fetchval(COUNT_LEADS, campaign)
    finally:
        await conn.close()
    if count != expected:
        raise RuntimeError(f"campaign {campaign} has {count} leads, expected {expected}")


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    print(f"Bulk uploads end to end: {args.rows:,} rows each, {args.rounds} round(s)")
    phones = Phones(seed=42)
    cases = ("ozonetel csv", "ozonetel xlsx", "flexydial insert")
    campaigns = {
        (case, r): f"{case.replace(' ', '-')}-{r}" for case in cases for r in range(args.rounds)
    }
    results = Results()
    receiver = Callbacks()
    async with (
        receiving({"/callback": receiver.receive}) as hooks,
        bench_server() as server,
        bench_database(server.url, "bench_bulk") as url,
    ):
        callback_url = f"{hooks}/callback"
        print_pairs([("server", server.source), *await server_description(server.url)])
        print_pairs(machine_description())
        key = await seed(url, list(campaigns.values()))
        extra = {"LEDGER_CALLBACK_ALLOW_PRIVATE": "1"}
        async with (
            serve_processes(url, 1, extra) as running,
            aiohttp.ClientSession() as session,
        ):
            base, pid = running[0]
            sampler = Sampler(pid)
            sampling = asyncio.create_task(sampler.run())
            token = await flexydial_token(session, base)
            for r in range(args.rounds):
                rows = make_rows(args.rows, phones)
                csv_data, xlsx_data = csv_bytes(rows), xlsx_bytes(make_rows(args.rows, phones))
                flexy = flexydial_body(
                    campaigns["flexydial insert", r], make_rows(args.rows, phones)
                )
                for case, data, filename in (
                    ("ozonetel csv", csv_data, "leads.csv"),
                    ("ozonetel xlsx", xlsx_data, "leads.xlsx"),
                ):
                    campaign = campaigns[case, r]
                    timing = await ozonetel_upload(
                        session, base, key, campaign, data, filename, receiver, callback_url
                    )
                    results.add(case, timing)
                    await check_leads(url, campaign, args.rows)
                timing = await flexydial_insert(session, base, token, flexy)
                results.add("flexydial insert", timing)
                await check_leads(url, campaigns["flexydial insert", r], args.rows)
                results.copy_seconds.append(await copy_baseline(url, campaigns["ozonetel csv", r]))
                if eventsourcing_peer.available():
                    results.peer_seconds.append(
                        await asyncio.to_thread(eventsourcing_peer.save_seconds, url, rows)
                    )
                print(
                    f"  round {r + 1}: "
                    + ", ".join(
                        f"{case} {results.timings[case][-1].completed:.2f} s" for case in cases
                    )
                    + f", COPY {results.copy_seconds[-1]:.2f} s"
                    + (
                        f", eventsourcing {results.peer_seconds[-1]:.2f} s"
                        if results.peer_seconds
                        else ""
                    )
                )
            sampler.running = False
            await sampling
            results.peak_rss = (sampler.own_peak, sampler.peak)
    report(args, results)


def report(args: argparse.Namespace, results: Results) -> None:
    copy = median(results.copy_seconds)
    peer = median(results.peer_seconds) if results.peer_seconds else None
    rows = [
        ["upload", "answered s", "completed s", "rows/s", "x COPY", "x peer rate", "target", ""]
    ]
    for case, timings in results.timings.items():
        completed = median([t.completed for t in timings])
        answered = median([t.answered for t in timings])
        times_copy = completed / copy
        times_peer = peer / completed if peer is not None else None
        target = COPY_TARGETS.get(case)
        passed = target is not None and times_copy <= target
        wanted = "" if target is None else f"<= {target:.1f}x COPY"
        if case == "ozonetel csv":
            wanted += f", >= {PEER_TARGET:.1f}x peer"
            passed = passed and times_peer is not None and times_peer >= PEER_TARGET
        rows.append(
            [
                case,
                f"{answered:.2f}",
                f"{completed:.2f}",
                f"{args.rows / completed:,.0f}",
                f"{times_copy:.2f}x",
                "-" if times_peer is None else f"{times_peer:.2f}x",
                wanted,
                "-" if target is None else ("PASS" if passed else "FAIL"),
            ]
        )
    rows.append(
        [
            "baseline: raw COPY of the events",
            "",
            f"{copy:.2f}",
            f"{args.rows / copy:,.0f}",
            "1.00x",
            "",
            "",
            "",
        ]
    )
    if peer is not None:
        rows.append(
            [
                "baseline: eventsourcing peer",
                "",
                f"{peer:.2f}",
                f"{args.rows / peer:,.0f}",
                f"{peer / copy:.2f}x",
                "1.00x",
                "",
                "",
            ]
        )
    print()
    print_table(rows)
    own, with_workers = (size / 1024 / 1024 for size in results.peak_rss)
    print()
    print_pairs(
        [
            (
                "serve peak RSS",
                (
                    f"{own:,.0f} MB (the process; target < {RSS_TARGET_MB} MB:"
                    f" {'PASS' if own < RSS_TARGET_MB else 'FAIL'}),"
                    f" {with_workers:,.0f} MB with its worker processes"
                ),
            )
        ]
    )
    print()
    print_notes(
        [
            (
                f"Medians of {len(results.copy_seconds)} round(s). 'answered': request to HTTP"
                " answer (read, validate, store the job); 'completed': request to the callback's"
                " arrival (Ozonetel) or to the status check that answers Completed (Flexydial)."
            ),
            (
                "COPY: asyncpg copy_records_to_table of the csv upload's own LeadInserted events"
                " (event rows only: no projections) into a table LIKE events with its indexes."
            ),
            (
                "eventsourcing peer: the eventsourcing library's PostgreSQL recorder saving the"
                " csv upload's rows as one-event aggregates, 1,000 per transaction, no"
                " projections, no checks (bench/eventsourcing_peer.py); 'x peer rate' is the"
                " upload's rows/s over the peer's."
                if peer is not None
                else "eventsourcing peer: not measured (pip install -e '.[bench]')."
            ),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
