"""Ozonetel AddCampaignBulkDataV4 end to end: 100 requests of 500 rows from 8 clients over 8
campaigns, rows/s from the first request to the last callback, beside the csv file upload of
the same 50,000 rows in the same run.

Run it from the repository root:

    .venv/bin/python bench/bulk_v4.py
    .venv/bin/python bench/bulk_v4.py --rounds 3 --requests 100 --rows 500 --clients 8 --campaigns 8
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/bulk_v4.py

One `lead-ledger serve` process (the console script beside this interpreter, with its job worker
and callback dispatcher) runs against a scratch database, with LEDGER_CALLBACK_ALLOW_PRIVATE=1
so that its callbacks reach a receiver in this process. V4: `--clients` tasks take the
`--requests` JSON requests of `--rows` rows each from one queue (request i goes to campaign
i mod `--campaigns`), each sending its next when its previous one was answered; the round is
timed from the first request sent to the last callback received, and each request from its
sending to its answer and to its callback, which must report every row processed with status
"Success". The baseline is the same rows (phone and name) as one csv through Ozonetel's file
upload to a fresh campaign, timed from the multipart POST to its callback as in
bench/bulk_upload.py. Every round uses new campaigns and new numbers, and every row is checked
in the database as a live lead. The account's limits for both routes are raised so that they
are counted but never reached. The exit status is 0 either way: a measurement to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import msgspec
from aiohttp import web

from lead_ledger.api import ozonetel_v4
from lead_ledger.ledger.database import connect
from lead_ledger.service import accounts
from lead_ledger.service.ozonetel_file import MAX_RECORDS
from lead_ledger.service.ozonetel_v4 import MAX_ROWS

if TYPE_CHECKING:
    # mypy checks bench/ as the namespace package `bench`; run as a script, bench/ itself is on
    # sys.path. Both name the same file.
    from bench._support import (
        Phones,
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
    from bench.add_data import percentile
    from bench.bulk_upload import ACCOUNT, Callbacks, Timing, check_leads, ozonetel_upload
else:
    from _support import (
        Phones,
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
    from add_data import percentile
    from bulk_upload import ACCOUNT, Callbacks, Timing, check_leads, ozonetel_upload

MAP: Final = ("PhoneNumber", "Name", "Priority", "AgentId")
CSV_HEADER: Final = ("PhoneNumber", "Name")
ANSWER: Final = {"status": "success", "message": "queued successfully"}
# Long enough for the slowest machine to finish a round's jobs, short enough that a lost
# callback ends the run instead of hanging it.
CALLBACK_TIMEOUT: Final = 600.0
SHOWN_PROBLEMS: Final = 10

Arrival = tuple[float, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Request:
    """One V4 request, encoded before the clock starts."""

    index: int
    campaign: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Sent:
    """A request the route accepted: when it was sent and answered, and the id it was given."""

    request: Request
    transaction_id: str
    started: float
    answered: float


@dataclass
class V4Round:
    seconds: float
    answers: list[float]
    callbacks: list[float]


@dataclass
class Results:
    v4: list[V4Round] = field(default_factory=list)
    csv: list[Timing] = field(default_factory=list)
    csv_rows: int = 0
    repeated_callbacks: int = 0
    problems: list[str] = field(default_factory=list)


class Deliveries:
    """A receiver for V4 callbacks, one future per transactionId. A callback may arrive before
    its request's answer has been read, so whichever comes first makes the future."""

    def __init__(self) -> None:
        self.arrivals: dict[str, asyncio.Future[Arrival]] = {}
        self.repeated = 0  # delivery is at least once: a repeat is counted, not an error
        self.strays: list[str] = []

    def arrival(self, transaction_id: str) -> asyncio.Future[Arrival]:
        future = self.arrivals.get(transaction_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self.arrivals[transaction_id] = future
        return future

    async def receive(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        body = await request.json()
        data = body.get("data") if isinstance(body, dict) else None
        transaction_id = data.get("transactionId") if isinstance(data, dict) else None
        if not isinstance(data, dict) or transaction_id is None:
            self.strays.append(f"a callback without data.transactionId: {body}")
            return web.json_response({"ok": True})
        future = self.arrival(str(transaction_id))
        if future.done():
            self.repeated += 1
        else:
            future.set_result((arrived, data))
        return web.json_response({"ok": True})


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=positive, default=1, help="runs of both uploads")
    parser.add_argument("--requests", type=positive, default=100, help="V4 requests per round")
    parser.add_argument("--rows", type=positive, default=500, help="rows per V4 request")
    parser.add_argument("--clients", type=positive, default=8, help="concurrent V4 clients")
    parser.add_argument("--campaigns", type=positive, default=8, help="campaigns V4 spreads over")
    args = parser.parse_args()
    if args.rows > MAX_ROWS:
        parser.error(f"--rows: the route takes at most {MAX_ROWS} rows per request")
    return args


def make_rows(count: int, phones: Phones) -> list[tuple[str, str]]:
    return [(phones.next(), f"Lead {i}") for i in range(count)]


def csv_bytes(rows: Sequence[tuple[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def v4_requests(
    rows: Sequence[tuple[str, str]],
    per_request: int,
    campaigns: Sequence[str],
    key: str,
    callback_url: str,
) -> list[Request]:
    requests = []
    for index, start in enumerate(range(0, len(rows), per_request)):
        campaign = campaigns[index % len(campaigns)]
        body = {
            "apiKey": key,
            "userName": ACCOUNT,
            "campaignName": campaign,
            "bulkData": {
                "map": list(MAP),
                "data": [[phone, name, 1, ""] for phone, name in rows[start : start + per_request]],
            },
            "callBackUrl": callback_url,
            "checkDuplicate": "false",
        }
        requests.append(Request(index, campaign, msgspec.json.encode(body)))
    return requests


async def seed(database_url: str, campaigns: Sequence[str]) -> str:
    """The account, its Ozonetel key, the campaigns, and limits for the csv upload and V4 that
    are counted but never reached."""
    conn = await connect(database_url)
    try:
        return await seed_ozonetel_account(
            conn,
            ACCOUNT,
            campaigns,
            accounts.RateLimitsInput(
                ozonetel_bulk_per_minute=1_000, ozonetel_bulk_v4_per_minute=100_000
            ),
        )
    finally:
        await conn.close()


async def v4_client(
    session: aiohttp.ClientSession,
    url: str,
    pending: Iterator[Request],
    sent: list[Sent],
    problems: list[str],
) -> None:
    """Send the queue's next request once the previous one is answered, until it is empty."""
    headers = {"Content-Type": "application/json"}
    for request in pending:
        started = time.perf_counter()
        async with session.post(url, data=request.body, headers=headers) as response:
            answer = await response.json(content_type=None)
        answered = time.perf_counter()
        transaction_id = answer.get("transactionId") if isinstance(answer, dict) else None
        if (
            response.status != 200
            or transaction_id is None
            or {name: answer.get(name) for name in ANSWER} != ANSWER
        ):
            raise RuntimeError(f"V4 request {request.index} refused: {response.status} {answer}")
        if not isinstance(transaction_id, str):
            problems.append(f"request {request.index}: transactionId {transaction_id!r} is no str")
        sent.append(Sent(request, str(transaction_id), started, answered))


def callback_problems(sent: Sent, data: dict[str, Any], rows: int) -> list[str]:
    expected = {
        "totalNoUploaded": str(rows),
        "numbersProcessed": str(rows),
        "numbersNotProcessed": "0",
        "failedFilePath": "",
        "transactionId": sent.transaction_id,
        "status": "Success",
        "message": "File Successfully uploaded.",
    }
    problems = [
        f"request {sent.request.index} ({sent.transaction_id}): callback {name}"
        f" {data.get(name)!r}, expected {value!r}"
        for name, value in expected.items()
        if data.get(name) != value
    ]
    problems += [
        f"request {sent.request.index} ({sent.transaction_id}): callback has no {name}"
        for name in ("startDateTime", "endDateTime")
        if not data.get(name)
    ]
    return problems


async def v4_round(
    session: aiohttp.ClientSession,
    base: str,
    requests: Sequence[Request],
    clients: int,
    deliveries: Deliveries,
    rows: int,
    problems: list[str],
) -> V4Round:
    sent: list[Sent] = []
    pending = iter(requests)  # shared: each client takes the next request in turn
    url = f"{base}{ozonetel_v4.PATH}"
    await asyncio.gather(
        *(v4_client(session, url, pending, sent, problems) for _ in range(clients))
    )
    arrivals = await asyncio.wait_for(
        asyncio.gather(*(deliveries.arrival(s.transaction_id) for s in sent)),
        timeout=CALLBACK_TIMEOUT,
    )
    for one, (_, data) in zip(sent, arrivals, strict=True):
        problems += callback_problems(one, data, rows)
    first = min(one.started for one in sent)
    last = max(arrived for arrived, _ in arrivals)
    return V4Round(
        seconds=last - first,
        answers=[one.answered - one.started for one in sent],
        callbacks=[arrived - one.started for one, (arrived, _) in zip(sent, arrivals, strict=True)],
    )


async def check_campaign(url: str, campaign: str, expected: int, problems: list[str]) -> None:
    try:
        await check_leads(url, campaign, expected)
    except RuntimeError as error:
        problems.append(str(error))


@dataclass(frozen=True, slots=True)
class Target:
    """The running server, its database, the key, and this process's callback receivers."""

    session: aiohttp.ClientSession
    base: str
    database_url: str
    key: str
    callbacks: Callbacks
    deliveries: Deliveries
    callback_url: str  # the csv upload's; V4's is this plus /v4


@contextlib.asynccontextmanager
async def receivers() -> AsyncIterator[tuple[Callbacks, Deliveries, str]]:
    """Both callback receivers on one free port: the csv upload's and V4's at its /v4."""
    callbacks, deliveries = Callbacks(), Deliveries()
    routes = {"/callback": callbacks.receive, "/callback/v4": deliveries.receive}
    async with receiving(routes) as base:
        yield callbacks, deliveries, f"{base}/callback"


async def one_round(
    target: Target,
    args: argparse.Namespace,
    rows: Sequence[tuple[str, str]],
    v4_campaigns: Sequence[str],
    csv_campaign: str,
    results: Results,
) -> None:
    requests = v4_requests(rows, args.rows, v4_campaigns, target.key, f"{target.callback_url}/v4")
    v4 = await v4_round(
        target.session,
        target.base,
        requests,
        args.clients,
        target.deliveries,
        args.rows,
        results.problems,
    )
    results.v4.append(v4)
    for campaign, count in Counter(q.campaign for q in requests).items():
        await check_campaign(target.database_url, campaign, count * args.rows, results.problems)
    # One file holds at most MAX_RECORDS rows: beyond that the baseline takes the first ones.
    csv_rows = rows[:MAX_RECORDS]
    results.csv_rows = len(csv_rows)
    timing = await ozonetel_upload(
        target.session,
        target.base,
        target.key,
        csv_campaign,
        csv_bytes(csv_rows),
        "leads.csv",
        target.callbacks,
        target.callback_url,
    )
    results.csv.append(timing)
    await check_campaign(target.database_url, csv_campaign, len(csv_rows), results.problems)
    print(
        f"  round {len(results.v4)}: V4 {v4.seconds:.2f} s ({len(rows) / v4.seconds:,.0f} rows/s),"
        f" csv {timing.completed:.2f} s ({len(csv_rows) / timing.completed:,.0f} rows/s)"
    )


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    print(
        f"Ozonetel bulk V4: {args.requests} requests of {args.rows} rows from {args.clients}"
        f" clients over {args.campaigns} campaigns, beside the csv upload; {args.rounds} round(s)"
    )
    phones = Phones(seed=44)
    v4_campaigns = [[f"v4-{r}-{c}" for c in range(args.campaigns)] for r in range(args.rounds)]
    csv_campaigns = [f"csv-{r}" for r in range(args.rounds)]
    results = Results()
    async with (
        receivers() as (callbacks, deliveries, callback_url),
        bench_server() as server,
        bench_database(server.url, "bench_v4") as url,
    ):
        print_pairs([("server", server.source), *await server_description(server.url)])
        print_pairs(machine_description())
        key = await seed(url, [*(c for cs in v4_campaigns for c in cs), *csv_campaigns])
        extra = {"LEDGER_CALLBACK_ALLOW_PRIVATE": "1"}
        async with serve_processes(url, 1, extra) as running, aiohttp.ClientSession() as session:
            target = Target(session, running[0][0], url, key, callbacks, deliveries, callback_url)
            for r in range(args.rounds):
                rows = make_rows(args.requests * args.rows, phones)
                await one_round(target, args, rows, v4_campaigns[r], csv_campaigns[r], results)
        results.repeated_callbacks = deliveries.repeated
        results.problems += deliveries.strays
    report(args, results)


def milliseconds(values: Sequence[float]) -> list[str]:
    ordered = sorted(values)
    return [f"{percentile(ordered, f) * 1000:,.0f}" for f in (0.50, 0.99)] + [
        f"{ordered[-1] * 1000:,.0f}"
    ]


def report(args: argparse.Namespace, results: Results) -> None:
    total = args.requests * args.rows
    v4_seconds = median([r.seconds for r in results.v4])
    csv_seconds = median([t.completed for t in results.csv])
    v4_rate, csv_rate = total / v4_seconds, results.csv_rows / csv_seconds
    print()
    print_table(
        [
            ["upload", "requests", "rows", "seconds", "rows/s", "x csv"],
            [
                f"ozonetel bulk V4 ({args.clients} clients, {args.campaigns} campaigns)",
                f"{args.requests:,}",
                f"{total:,}",
                f"{v4_seconds:.2f}",
                f"{v4_rate:,.0f}",
                f"{v4_rate / csv_rate:.2f}x",
            ],
            [
                "ozonetel csv upload (one file)",
                "1",
                f"{results.csv_rows:,}",
                f"{csv_seconds:.2f}",
                f"{csv_rate:,.0f}",
                "1.00x",
            ],
        ]
    )
    print()
    print_table(
        [
            ["per request", "p50 ms", "p99 ms", "max ms"],
            ["V4 sent to answered", *milliseconds([s for r in results.v4 for s in r.answers])],
            [
                "V4 sent to its callback",
                *milliseconds([s for r in results.v4 for s in r.callbacks]),
            ],
            ["csv sent to answered", *milliseconds([t.answered for t in results.csv])],
            ["csv sent to its callback", *milliseconds([t.completed for t in results.csv])],
        ]
    )
    print()
    print_pairs([("V4 / csv", f"{v4_rate / csv_rate:.2f}x the csv upload's rows/s")])
    print()
    notes = [
        (
            f"Medians of {len(results.v4)} round(s). V4 seconds: the first request sent to the"
            " last callback received; its percentiles pool every request of every round. csv:"
            " the multipart POST to its callback, one file of the same numbers and names."
        ),
        (
            f"Checks: every V4 answer 'queued successfully' with a transactionId, every callback"
            f' numbersProcessed "{args.rows}" and status "Success", every row a live lead.'
            f" Callbacks delivered more than once: {results.repeated_callbacks}."
        ),
    ]
    if results.problems:
        notes.append(f"{len(results.problems)} problem(s) found; the first ones:")
        notes += results.problems[:SHOWN_PROBLEMS]
    else:
        notes.append("No problems found.")
    print_notes(notes)


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
