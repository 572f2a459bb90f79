"""Ozonetel AddCampaignData under load, beside a bare endpoint measured in the same run.

Run it from the repository root:

    .venv/bin/python bench/add_data.py
    .venv/bin/python bench/add_data.py --seconds 20 --clients 32 --profile /tmp/prof
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/add_data.py

Three phases against one scratch database, each with the same load generator (one aiohttp
ClientSession in this process, 32 clients, the same request body):
1. the baseline: bench/bare_endpoint.py, a bare aiohttp + asyncpg endpoint (uvloop, a pool of
   serve's size) that inserts the request body as one row in its own transaction;
2. one `lead-ledger serve` process (the console script beside this interpreter);
3. two of them, the clients split between them.
Every lead-ledger request is a new random number with checkDuplicate true, so each one takes the
campaign lock, runs the exact duplicate check and the do-not-call check, seals the lead's
personal data and appends; the account's ozonetel_add_per_minute is at its maximum and its
window is emptied every 5 s, so the limit is counted (with each insert group) but never
reached. Targets (issue 18): one process at least the baseline's requests/s with a p99 no higher
than the baseline's; two processes at least 1.6x one process's requests/s. Each phase also
prints the CPU its parts used (the HTTP server(s) with their worker processes, every PostgreSQL
process, this load generator). With --profile DIR, py-spy records the one-process server while
the load runs. The exit status is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import aiohttp
import psutil

from lead_ledger.api import ozonetel_add
from lead_ledger.ledger.database import connect
from lead_ledger.service import accounts

if TYPE_CHECKING:
    # mypy checks bench/ as the namespace package `bench`; run as a script, bench/ itself is on
    # sys.path. Both name the same file.
    from bench._support import (
        Phones,
        bare_endpoint,
        bench_database,
        bench_server,
        machine_description,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )
else:
    from _support import (
        Phones,
        bare_endpoint,
        bench_database,
        bench_server,
        machine_description,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        seed_ozonetel_account,
        serve_processes,
        server_description,
    )

TWO_PROCESSES_TARGET: Final = 1.6
RESET_SECONDS: Final = 5.0
# bench/vicidial_add.py's absolute target, judged by `report`.
TARGET_RATE: Final = 800.0
TARGET_P99_MS: Final = 50.0
ACCOUNT: Final = "bench"
CAMPAIGN: Final = "bench"
EXPECTED: Final = "Please pass the valid Campaign action SuccessFully Updated {} Campaign Data"


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    # CPU seconds of the measured window per part: the server(s), PostgreSQL, the load generator.
    cpu: dict[str, float] = field(default_factory=dict)


class CpuWatch:
    """CPU seconds (user + system) of the HTTP server processes, of every PostgreSQL process
    (the postmaster and its children, found from a backend) and of this process, the load
    generator: what saturates the two cores during a phase."""

    def __init__(self, servers: Sequence[int], postmaster: int) -> None:
        self.servers = [psutil.Process(pid) for pid in servers]
        self.postmaster = psutil.Process(postmaster)
        self.here = psutil.Process()

    @staticmethod
    def _seconds(processes: Sequence[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def snapshot(self) -> dict[str, float]:
        database = [self.postmaster, *self.postmaster.children()]
        servers = list(self.servers)
        for server in self.servers:  # serve's key workers count as the server's
            with contextlib.suppress(psutil.NoSuchProcess):
                servers += server.children(recursive=True)
        return {
            "server": self._seconds(servers),
            "postgresql": self._seconds(database),
            "load generator": self._seconds([self.here]),
        }

    async def measure(self, measure_from: float, stop_at: float, tally: Tally) -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        start = self.snapshot()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        end = self.snapshot()
        tally.cpu = {part: end[part] - start[part] for part in start}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured load first")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in all")
    parser.add_argument(
        "--campaigns",
        type=int,
        default=1,
        help="campaigns the clients spread over (1: all serialise on one campaign lock)",
    )
    parser.add_argument("--pool", type=int, default=None, help="LEDGER_DB_POOL_MAX per server")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    parser.add_argument(
        "--waits", action="store_true", help="sample pg_stat_activity wait events during the load"
    )
    return parser.parse_args()


def campaign_name(index: int) -> str:
    return CAMPAIGN if index == 0 else f"{CAMPAIGN}-{index}"


async def seed(database_url: str, campaigns: int) -> str:
    """The account, its ozonetel key and campaign, and a limit that is counted but never hit."""
    conn = await connect(database_url)
    try:
        return await seed_ozonetel_account(
            conn,
            ACCOUNT,
            [campaign_name(index) for index in range(campaigns)],
            accounts.RateLimitsInput(ozonetel_add_per_minute=100_000),
        )
    finally:
        await conn.close()


async def postmaster_pid(database_url: str) -> int:
    """The PostgreSQL server's postmaster: the parent of a backend (on this machine)."""
    conn = await connect(database_url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        parent = psutil.Process(backend).parent()
        if parent is None:
            raise RuntimeError("a backend without its postmaster: is the server on this machine?")
        return parent.pid
    finally:
        await conn.close()


async def keep_under_limit(database_url: str, stop: asyncio.Event) -> None:
    """Empties the rate-limit windows now and every RESET_SECONDS until `stop`: the account's
    limit (100,000 a minute, the most an account may set) is counted on every request and never
    reached, however fast a phase runs (at 5,000 req/s a minute would reach it)."""
    conn = await connect(database_url)
    try:
        while not stop.is_set():
            await conn.execute("DELETE FROM rate_limit_windows")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESET_SECONDS)
    finally:
        await conn.close()


async def client(  # noqa: PLR0913 - one client's whole setting
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    campaign: str,
    phones: Phones,
    stop_at: float,
    measure_from: float,
    tally: Tally,
    *,
    bare: bool,
) -> None:
    headers = {"apiKey": key}
    expected = EXPECTED.format(campaign)
    while (started := time.perf_counter()) < stop_at:
        payload = {
            "userName": ACCOUNT,
            "campaignName": campaign,
            "phoneNumber": phones.next(),
            "Name": "Bench Lead",
            "checkDuplicate": True,
        }
        try:
            async with session.post(url, json=payload, headers=headers) as response:
                answer = await response.json(content_type=None)
                ok = response.status == 200 and (bare or answer.get("message") == expected)
                problem = f"{response.status} {answer}"
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
    bases: Sequence[str],
    key: str,
    args: argparse.Namespace,
    phones: Phones,
    watch: CpuWatch | None = None,
    *,
    bare: bool = False,
) -> Tally:
    tally = Tally()
    path = "/ingest" if bare else ozonetel_add.PATH
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        now = time.perf_counter()
        measure_from = now + args.warmup
        stop_at = measure_from + args.seconds
        tasks = [
            client(
                session,
                f"{bases[i % len(bases)]}{path}",
                key,
                campaign_name(i % args.campaigns),
                phones,
                stop_at,
                measure_from,
                tally,
                bare=bare,
            )
            for i in range(args.clients)
        ]
        if watch is not None:
            tasks.append(watch.measure(measure_from, stop_at, tally))
        await asyncio.gather(*tasks)
    return tally


def percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


async def profile(pid: int, directory: Path, seconds: float) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the load
    py_spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(  # noqa: S603, ASYNC220 - py-spy from this virtualenv
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--output",
            str(directory / "server-0.txt"),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    print("AddCampaignData load beside a bare endpoint, one database")
    phones = Phones()
    results: list[tuple[str, Tally]] = []
    waits: Counter[str] = Counter()
    async with bench_server() as server, bench_database(server.url, "bench_add") as url:
        print_pairs([("server", server.source), *await server_description(server.url)])
        print_pairs(machine_description())
        key = await seed(url, args.campaigns)
        print_pairs(
            [
                ("pool", f"LEDGER_DB_POOL_MAX={args.pool or 10} (the baseline's pool alike)"),
                (
                    "load",
                    (
                        f"{args.clients} clients on {args.campaigns} campaign(s),"
                        f" {args.warmup:g} s warm-up + {args.seconds:g} s a phase"
                    ),
                ),
            ]
        )
        postmaster = await postmaster_pid(url)
        async with bare_endpoint(url) as (base, pid):
            results.append(
                (
                    "baseline: bare aiohttp + asyncpg insert",
                    await load([base], key, args, phones, CpuWatch([pid], postmaster), bare=True),
                )
            )
        extra = {} if args.pool is None else {"LEDGER_DB_POOL_MAX": str(args.pool)}
        stop_resets = asyncio.Event()
        resets = asyncio.create_task(keep_under_limit(url, stop_resets))
        for count in (1, 2):
            async with serve_processes(url, count, extra) as running:
                bases = [base for base, _ in running]
                spy = None
                if args.profile is not None and count == 1:
                    spy = await profile(running[0][1], args.profile, args.warmup + args.seconds)
                sampler = asyncio.create_task(sample_waits(url)) if args.waits else None
                label = (
                    "lead-ledger, 1 serve process"
                    if count == 1
                    else "lead-ledger, 2 serve processes"
                )
                watch = CpuWatch([pid for _, pid in running], postmaster)
                results.append((label, await load(bases, key, args, phones, watch)))
                if sampler is not None:
                    sampler.cancel()
                    waits += await sampler
                if spy is not None:
                    spy.wait(timeout=60)
        stop_resets.set()
        await resets
    report_phases(results, args.seconds)
    if args.waits:
        print()
        print("  what server backends were doing (pg_stat_activity samples, every 20 ms):")
        total = sum(waits.values()) or 1
        rows = [["state / wait", "share"]]
        rows += [[name, f"{n / total:.0%}"] for name, n in waits.most_common(12)]
        print_table(rows)


SAMPLE_WAITS: Final = """
SELECT state, coalesce(wait_event_type || ':' || wait_event, 'on CPU') AS wait, query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


async def sample_waits(url: str) -> Counter[str]:
    """Counts of (state, wait event, statement) over the load: where the time goes in SQL."""
    waits: Counter[str] = Counter()
    conn = await connect(url)
    try:
        while True:
            for row in await conn.fetch(SAMPLE_WAITS):
                if row["state"] == "idle":
                    waits["idle (between statements: client side)"] += 1
                    continue
                query = " ".join(row["query"].split())[:60]
                waits[f"{row['state']} {row['wait']} {query}"] += 1
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        return waits
    finally:
        await conn.close()


class Figures:
    """One phase's requests/s and latency percentiles."""

    def __init__(self, tally: Tally, seconds: float) -> None:
        ordered = sorted(tally.latencies)
        self.requests = len(ordered)
        self.errors = tally.errors
        self.rate = len(ordered) / seconds
        self.p50, self.p90, self.p99 = (percentile(ordered, f) * 1000 for f in (0.5, 0.9, 0.99))
        self.peak = ordered[-1] * 1000 if ordered else float("nan")


def report_phases(results: Sequence[tuple[str, Tally]], seconds: float) -> None:
    """Each phase's figures, then the targets judged against the baseline of the same run."""
    figures = [(label, Figures(tally, seconds)) for label, tally in results]
    print()
    rows = [["phase", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]]
    rows += [
        [
            label,
            f"{f.requests:,}",
            f"{f.errors:,}",
            f"{f.rate:,.0f}",
            f"{f.p50:.1f}",
            f"{f.p90:.1f}",
            f"{f.p99:.1f}",
            f"{f.peak:.1f}",
        ]
        for label, f in figures
    ]
    print_table(rows)
    report_cpu(results, seconds)
    (_, bare), (_, one), (_, two) = figures
    errors = sum(f.errors for _, f in figures)
    throughput = one.rate / bare.rate if bare.rate else float("nan")
    tail = one.p99 / bare.p99 if bare.p99 else float("nan")
    scaling = two.rate / one.rate if one.rate else float("nan")
    print()
    print_pairs(
        [
            (
                "1 process vs baseline",
                (
                    f"{throughput:.2f}x its req/s (target >= 1.00),"
                    f" {tail:.2f}x its p99 (target <= 1.00):"
                    f" {'PASS' if throughput >= 1 and tail <= 1 else 'FAIL'}"
                ),
            ),
            (
                "2 processes vs 1",
                (
                    f"{scaling:.2f}x (target >= {TWO_PROCESSES_TARGET}):"
                    f" {'PASS' if scaling >= TWO_PROCESSES_TARGET else 'FAIL'}"
                ),
            ),
            ("errors", f"{errors} {'(none)' if not errors else 'FAIL'}"),
        ]
    )
    notes = []
    cores = usable_cores()
    one_cpu = sum(results[1][1].cpu.values())
    if one_cpu and one.requests:
        # What two processes' target asks of the machine, at one process's CPU per request
        # (server, database and load generator together): a second process cannot do better.
        needed = TWO_PROCESSES_TARGET * one.rate * one_cpu / one.requests
        notes.append(
            f"{TWO_PROCESSES_TARGET}x one process's rate needs ~{needed:.1f} cores at its CPU per"
            f" request ({1000 * one_cpu / one.requests:.3f} ms, every part); {cores} usable"
        )
    first = next((t.first_error for _, t in results if t.first_error), None)
    if first:
        notes.append(f"first error: {first}")
    if notes:
        print_notes(notes)


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def report_cpu(results: Sequence[tuple[str, Tally]], seconds: float) -> None:
    """Where each phase's CPU went: per part, CPU ms per request and cores kept busy."""
    parts = list(results[0][1].cpu)
    print()
    print("  CPU of the measured window, per part: ms per request (cores busy)")
    rows = [["phase", *parts, "all"]]
    for label, tally in results:
        count = max(1, len(tally.latencies))
        cells = [*tally.cpu.values(), sum(tally.cpu.values())]
        rows.append([label, *(f"{1000 * cpu / count:.3f} ({cpu / seconds:.2f})" for cpu in cells)])
    print_table(rows)


def report(tally: Tally, seconds: float, *, judged: bool = True) -> None:
    """One load's figures, and (when `judged`) the absolute target bench/vicidial_add.py
    holds its adds to, and the result."""
    ordered = sorted(tally.latencies)
    rate = len(ordered) / seconds
    p50, p90, p99 = (percentile(ordered, f) * 1000 for f in (0.50, 0.90, 0.99))
    peak = ordered[-1] * 1000 if ordered else float("nan")
    passed = rate >= TARGET_RATE and p99 <= TARGET_P99_MS and tally.errors == 0
    print()
    print_table(
        [
            ["requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"],
            [
                f"{len(ordered):,}",
                f"{tally.errors:,}",
                f"{rate:,.0f}",
                f"{p50:.1f}",
                f"{p90:.1f}",
                f"{p99:.1f}",
                f"{peak:.1f}",
            ],
        ]
    )
    if not judged:
        return
    print()
    print_pairs(
        [
            ("target", f">= {TARGET_RATE:,.0f} req/s, p99 <= {TARGET_P99_MS:.0f} ms, no errors"),
            ("result", "PASS" if passed else "FAIL"),
        ]
    )
    if tally.first_error:
        print_notes([f"first error: {tally.first_error}"])


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
