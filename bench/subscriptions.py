"""Webhook subscriptions end to end: the latency from an event's append to its receipt by each
of 10 subscriptions while leads are written at 500 events/s.

Run it from the repository root:

    .venv/bin/python bench/subscriptions.py
    .venv/bin/python bench/subscriptions.py --rate 500 --seconds 20 --subscriptions 10
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/subscriptions.py

One `lead-ledger serve` process (the console script beside this interpreter, with its
subscription deliverer) runs against a scratch database, with LEDGER_CALLBACK_ALLOW_PRIVATE=1
so that its POSTs reach a receiver in this process. This process writes LeadInserted events
(10 leads per write transaction, 50 transactions a second at the default rate) through the
service's own writer, and notes when each commit returned: the append. The receiver notes the
arrival of each event at each subscription, and checks every signature. Latency is arrival
minus append, per event and subscription. The baseline is the same events' latency to one
client of the SSE stream (`/v1/events/stream`), the push path that already existed, measured
in the same run. Every subscription must receive every event, in feed order.
Target: p99 <= 1 s. The exit status is 0 either way: a measurement to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import aiohttp
import msgspec
from aiohttp import web

from lead_ledger.ledger.database import create_pool
from lead_ledger.ledger.envelope import NO_STREAM, Actor
from lead_ledger.ledger.events import LeadFields, stream_of_lead
from lead_ledger.ledger.lead import decide_insert
from lead_ledger.ledger.store import read_feed
from lead_ledger.service import accounts
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, record, stream_append

if TYPE_CHECKING:
    from bench._support import (
        bench_database,
        bench_server,
        machine_description,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        receiving,
        serve_processes,
        server_description,
    )
else:
    from _support import (
        bench_database,
        bench_server,
        machine_description,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        receiving,
        serve_processes,
        server_description,
    )

ACCOUNT: Final = "bench"
CAMPAIGN: Final = "bench-campaign"
TARGET_P99: Final = 1.0
TICKS_PER_SECOND: Final = 50  # write transactions a second; each holds rate / 50 leads
SECRET: Final = "bench-subscription-secret"  # noqa: S105 - a scratch database's subscriptions
DRAIN_SECONDS: Final = 30.0


class _Entry(msgspec.Struct):
    position: int
    stream_id: str


class _Body(msgspec.Struct):
    events: list[_Entry]


_BODY: Final = msgspec.json.Decoder(_Body)
_ENTRY: Final = msgspec.json.Decoder(_Entry)


@dataclass
class Arrivals:
    """When each lead's insert was appended, and when each path received it."""

    appended: dict[str, float] = field(default_factory=dict)
    webhook: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    order: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    sse: dict[str, float] = field(default_factory=dict)
    bad_signatures: int = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.perf_counter()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Ledger-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        subscription = request.headers["X-Ledger-Subscription"]
        for entry in _BODY.decode(body).events:
            self.webhook[entry.stream_id].append(arrived)
            self.order[subscription].append(entry.position)
        return web.Response(status=200)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=500, help="events appended a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to write")
    parser.add_argument("--subscriptions", type=int, default=10)
    return parser.parse_args()


async def seed(url: str) -> tuple[int, int, str]:
    """The account, its campaign and a native key; (account id, campaign id, key)."""
    pool = await create_pool(url, min_size=1, max_size=1)
    ctx = Context(actor=Actor(dialect="admin"), request_id="bench")
    try:
        async with pool.acquire() as conn:
            account = await accounts.create_account(
                conn, ctx, accounts.NewAccount(name=ACCOUNT, default_region="IN")
            )
            issued = await accounts.issue_credential(
                conn, ctx, ACCOUNT, accounts.NewCredential(api="native")
            )
            campaign = await accounts.create_campaign(
                conn, ctx, ACCOUNT, accounts.NewCampaign(name=CAMPAIGN)
            )
    finally:
        await pool.close()
    return account.id, campaign.id, issued.key


async def write_leads(
    url: str,
    account_id: int,
    campaign_id: int,
    rate: int,
    seconds: float,
    arrivals: Arrivals,
) -> int:
    """Insert `rate` leads a second for `seconds`, TICKS_PER_SECOND transactions a second on a
    fixed schedule (a slow commit does not delay the next); returns how many."""
    per_tick = max(1, rate // TICKS_PER_SECOND)
    ticks = int(seconds * TICKS_PER_SECOND)
    pool = await create_pool(url, min_size=4, max_size=8)
    ctx = Context(actor=Actor(dialect="native", account_id=account_id), request_id="bench")

    async def tick(first: int) -> None:
        appends = [
            stream_append(
                ctx,
                stream_of_lead(lead_id),
                NO_STREAM,
                [
                    decide_insert(
                        lead_id=lead_id,
                        account_id=account_id,
                        campaign_id=campaign_id,
                        fields=LeadFields(phone_numbers=[f"98{lead_id:08d}"], first_name="Asha"),
                        default_region="IN",
                    )
                ],
                account_id=account_id,
            )
            for lead_id in range(first, first + per_tick)
        ]
        async with pool.acquire() as conn, write_transaction(conn):
            await record(conn, appends)
        appended = time.perf_counter()
        for lead_id in range(first, first + per_tick):
            arrivals.appended[stream_of_lead(lead_id)] = appended

    try:
        start = time.perf_counter()
        tasks = []
        for n in range(ticks):
            await asyncio.sleep(max(0.0, start + n / TICKS_PER_SECOND - time.perf_counter()))
            tasks.append(asyncio.create_task(tick(1 + n * per_tick)))
        await asyncio.gather(*tasks)
    finally:
        await pool.close()
    return ticks * per_tick


async def follow_sse(
    session: aiohttp.ClientSession, base: str, key: str, arrivals: Arrivals
) -> None:
    """The baseline: one SSE client of the account's feed, noting each lead event's arrival."""
    headers = {"Authorization": f"Bearer {key}"}
    async with session.get(f"{base}/v1/events/stream", headers=headers) as response:
        async for line in response.content:
            if line.startswith(b"data: "):
                entry = _ENTRY.decode(line[6:])
                if entry.stream_id.startswith("lead-"):
                    arrivals.sse.setdefault(entry.stream_id, time.perf_counter())


async def feed_order(url: str, account_id: int) -> list[int]:
    """The positions of the account's lead events in feed order, as GET /v1/events pages them."""
    pool = await create_pool(url, min_size=1, max_size=1)
    positions: list[int] = []
    try:
        async with pool.acquire() as conn:
            after = 0
            while page := await read_feed(conn, after=after, limit=1000, account_id=account_id):
                positions += [e.position for e in page if e.stream_id.startswith("lead-")]
                after = page[-1].position
    finally:
        await pool.close()
    return positions


async def drained(arrivals: Arrivals, written: int, subscriptions: int) -> None:
    """Wait (up to DRAIN_SECONDS) for every event at every subscription and at the stream."""
    for _ in range(int(DRAIN_SECONDS * 10)):
        received = sum(len(v) for v in arrivals.webhook.values())
        if received >= written * subscriptions and len(arrivals.sse) >= written:
            return
        await asyncio.sleep(0.1)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    print(
        f"Webhook subscriptions: {args.subscriptions} subscriptions, {args.rate} events/s"
        f" for {args.seconds:.0f} s"
    )
    arrivals = Arrivals()
    async with (
        receiving({"/hook": arrivals.receive}) as hooks,
        bench_server() as server,
        bench_database(server.url, "bench_subs") as url,
    ):
        print_pairs([("server", server.source), *await server_description(server.url)])
        print_pairs(machine_description())
        account_id, campaign_id, key = await seed(url)
        extra = {"LEDGER_CALLBACK_ALLOW_PRIVATE": "1"}
        async with (
            serve_processes(url, 1, extra) as running,
            aiohttp.ClientSession() as session,
        ):
            base = running[0][0]
            for _ in range(args.subscriptions):
                async with session.post(
                    f"{base}/v1/subscriptions",
                    json={"url": f"{hooks}/hook", "secret": SECRET},
                    headers={"Authorization": f"Bearer {key}"},
                ) as response:
                    if response.status != 201:
                        detail = await response.text()
                        raise SystemExit(
                            f"POST /v1/subscriptions answered {response.status}: {detail}"
                        )
            sse = asyncio.create_task(follow_sse(session, base, key, arrivals))
            await asyncio.sleep(0.5)  # the stream is open before the first write
            written = await write_leads(
                url, account_id, campaign_id, args.rate, args.seconds, arrivals
            )
            await drained(arrivals, written, args.subscriptions)
            sse.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await sse
        feed = await feed_order(url, account_id)
    report(args, arrivals, written, feed)


def report(args: argparse.Namespace, arrivals: Arrivals, written: int, feed: list[int]) -> None:
    webhook = [
        arrived - arrivals.appended[stream]
        for stream, times in arrivals.webhook.items()
        for arrived in times
    ]
    sse = [arrived - arrivals.appended[stream] for stream, arrived in arrivals.sse.items()]
    expected = written * args.subscriptions
    # At least once: a batch may come twice; what counts is each event's first arrival.
    in_order = len(arrivals.order) == args.subscriptions and all(
        list(dict.fromkeys(order)) == feed for order in arrivals.order.values()
    )
    rows = [["path", "received", "p50 ms", "p99 ms", "max ms", "target", "result"]]
    p99 = percentile(webhook, 0.99) if webhook else float("inf")
    complete = len(webhook) >= expected and in_order and arrivals.bad_signatures == 0
    rows.append(
        [
            f"webhooks ({args.subscriptions} subscriptions)",
            f"{len(webhook):,} / {expected:,}",
            f"{percentile(webhook, 0.5) * 1000:,.0f}" if webhook else "-",
            f"{p99 * 1000:,.0f}",
            f"{max(webhook, default=0) * 1000:,.0f}",
            f"p99 <= {TARGET_P99 * 1000:,.0f}",
            "PASS" if p99 <= TARGET_P99 and complete else "FAIL",
        ]
    )
    rows.append(
        [
            "baseline: SSE stream (1 client)",
            f"{len(sse):,} / {written:,}",
            f"{percentile(sse, 0.5) * 1000:,.0f}" if sse else "-",
            f"{percentile(sse, 0.99) * 1000:,.0f}" if sse else "-",
            f"{max(sse, default=0) * 1000:,.0f}",
            "",
            "",
        ]
    )
    print()
    print_table(rows)
    print()
    print_notes(
        [
            (
                f"{written:,} LeadInserted events, {TICKS_PER_SECOND} write transactions a"
                " second. Latency: from the return of the commit that appended the event (in"
                " this process) to its arrival at the receiver (in this process), per event and"
                " subscription; the SSE row is the same events' arrival at one stream client."
            ),
            (
                "Every event reached every subscription, first arrivals in feed order (transaction"
                f" id, position), as /v1/events reads it: {in_order}; signatures that did not"
                f" verify: {arrivals.bad_signatures}."
            ),
        ]
    )


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
