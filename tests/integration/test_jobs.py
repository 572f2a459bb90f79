"""Bulk jobs: submit, claim with SKIP LOCKED and a lease, run in one transaction, retry, fail,
survive a kill -9 mid-job, and deliver callbacks with retries."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
import structlog
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer

from lead_ledger.api.callback_http import callback_session, poster
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import create_pool
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.ledger.locks import JOB_WORKER_NAMESPACE, campaign_lock_key
from lead_ledger.ledger.store import read_feed
from lead_ledger.service import callbacks, jobs
from lead_ledger.service.job_kinds import job_kinds
from lead_ledger.service.jobs import Job, JobKind, JobKinds, JobOutcome
from lead_ledger.service.jobs.insert_leads_kind import InsertLeadsPayload, insert_leads_job
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.worker import run_worker
from lead_ledger.service.writer import Context
from tests.factories import make_account, make_campaign

ROOT = Path(__file__).resolve().parents[2]
CTX = Context(actor=Actor(dialect="native", account_id=None), request_id="test")

AiohttpServer = Callable[..., Awaitable[TestServer]]


def phone(i: int) -> str:
    return f"9{i:09d}"


async def submit(
    pool: asyncpg.Pool,
    account_id: int,
    campaign_id: int,
    rows: list[LeadFields],
    *,
    kind: str = "insert_leads",
    check_duplicates: bool = True,
    callback_url: str | None = None,
) -> int:
    payload = msgspec.json.encode(
        InsertLeadsPayload(campaign_id=campaign_id, check_duplicates=check_duplicates, rows=rows)
    )
    async with pool.acquire() as conn, write_transaction(conn):
        return await jobs.submit_job(
            conn,
            CTX,
            account_id=account_id,
            dialect="native",
            kind=kind,
            campaign_id=campaign_id,
            payload=payload,
            received=len(rows),
            callback_url=callback_url,
            upload_ref="book-1",
            options={},
        )


@asynccontextmanager
async def worker(
    pool: asyncpg.Pool, worker_id: str = "w1", kinds: JobKinds | None = None, **knobs: Any
) -> AsyncIterator[None]:
    """A worker running in this process for the block's duration; the app's kinds by default."""
    stop = asyncio.Event()
    knobs.setdefault("poll_seconds", 0.05)
    kinds = job_kinds() if kinds is None else kinds
    task = asyncio.create_task(run_worker(pool, stop, kinds=kinds, worker_id=worker_id, **knobs))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(pool: asyncpg.Pool, sql: str, *args: object, wait: float = 60) -> None:
    """Poll until the query returns true."""
    deadline = time.monotonic() + wait
    while not await pool.fetchval(sql, *args):
        assert time.monotonic() < deadline, f"timed out waiting for: {sql}"
        await asyncio.sleep(0.05)


FINISHED = "SELECT bool_and(state IN ('done', 'failed')) FROM job_queue"
# Another session of this database holds a transaction id: it has locked or written rows.
IN_RUN_TRANSACTION = """
SELECT EXISTS (
    SELECT FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
)
"""


async def job_events(pool: asyncpg.Pool, job_id: int) -> list[str]:
    rows = await pool.fetch(
        "SELECT type FROM events WHERE stream_id = $1 ORDER BY stream_version", f"job-{job_id}"
    )
    return [row["type"] for row in rows]


@pytest.fixture
async def campaign(pool: asyncpg.Pool) -> tuple[int, int]:
    account_id = await make_account(pool)
    return account_id, await make_campaign(pool, account_id)


async def test_worker_completes_insert_leads_job(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A submitted job is run by the worker: leads in, duplicates and phoneless rows rejected."""
    account_id, campaign_id = campaign
    rows = [
        LeadFields(phone_numbers=[phone(1)], name="a"),
        LeadFields(phone_numbers=[phone(1)], name="dup"),
        LeadFields(name="no phone"),
        LeadFields(phone_numbers=[phone(2)]),
    ]
    job_id = await submit(pool, account_id, campaign_id, rows)
    assert await pool.fetchval("SELECT state FROM jobs WHERE job_id = $1", job_id) == "queued"
    async with worker(pool):
        await until(pool, FINISHED)
    async with pool.acquire() as conn:
        view = await jobs.get_job(conn, account_id, job_id)
    assert view is not None
    assert view.state == "done"
    assert (view.counts.received, view.counts.inserted, view.counts.rejected) == (4, 2, 2)
    assert [(r.row_number, r.description) for r in view.rejected_rows] == [
        (2, "duplicate phone number in campaign"),
        (3, "a lead needs at least one phone number"),
    ]
    assert view.timings.completed_at is not None
    assert (
        await pool.fetchval("SELECT count(*) FROM leads WHERE campaign_id = $1", campaign_id) == 2
    )
    assert await job_events(pool, job_id) == ["JobSubmitted", "JobCompleted"]
    # The outcome is in the log: the payload is not kept.
    assert await pool.fetchval("SELECT count(*) FROM job_payloads") == 0
    meta = await pool.fetchval(
        "SELECT metadata ->> 'job_id' FROM events WHERE type = 'LeadInserted' LIMIT 1"
    )
    assert meta == str(job_id)


WAITING_FOR_ADVISORY_LOCK = """
SELECT backend_xid IS NULL AS no_xid FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
"""


async def test_job_takes_its_campaign_lock_before_its_transaction_id(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A job waits for its campaign lock before it locks a row: the feed orders by transaction
    id, so a job must not hold one while a writer it waits for commits first."""
    account_id, campaign_id = campaign
    await submit(pool, account_id, campaign_id, [LeadFields(phone_numbers=[phone(1)])])
    async with worker(pool):
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", campaign_lock_key(campaign_id))
            await until(pool, f"SELECT EXISTS ({WAITING_FOR_ADVISORY_LOCK})")
            assert await pool.fetchval(WAITING_FOR_ADVISORY_LOCK) is True
        await until(pool, FINISHED)


async def test_two_workers_never_run_the_same_job(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """Two workers on one pool share 20 jobs; every job runs exactly once."""
    account_id, campaign_id = campaign
    runs: Counter[int] = Counter()

    async def slow(conn: Connection, ctx: Context, job: Job, payload: bytes) -> JobOutcome:
        runs[job.job_id] += 1
        await asyncio.sleep(0.02)
        return JobOutcome()

    kinds = {"test_slow": JobKind(slow)}
    ids = [await submit(pool, account_id, campaign_id, [], kind="test_slow") for _ in range(20)]
    async with worker(pool, "w1", kinds), worker(pool, "w2", kinds):
        await until(pool, FINISHED)
    assert runs == Counter(dict.fromkeys(ids, 1))
    owners = await pool.fetchval(
        "SELECT count(DISTINCT metadata ->> 'job_id') FROM events WHERE type = 'JobCompleted'"
    )
    assert owners == 20
    assert await pool.fetchval("SELECT max(attempts) FROM job_queue") == 1


async def test_a_busy_campaigns_jobs_wait_for_it_and_others_go_first(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """While a campaign has a job running under a live lease, its next job is not claimed (it
    would only wait on the campaign's lock): a later job of another campaign is; once the
    first ends, or its lease expires, the campaign's next job is claimable again."""
    account_id, busy = campaign
    other = await make_campaign(pool, account_id, "other")
    first = await submit(pool, account_id, busy, [])
    second = await submit(pool, account_id, busy, [])
    third = await submit(pool, account_id, other, [])
    async with pool.acquire() as conn:
        claims = [await jobs.claim_next(conn, f"w{n}", 60) for n in range(3)]
        assert [c.job_id if c else None for c in claims] == [first, third, None]
        await conn.execute("UPDATE job_queue SET lease_until = now() - interval '1 second'")
        retaken = await jobs.claim_next(conn, "w4", 60)
        assert retaken is not None
        assert retaken.job_id == first  # the expired lease's job, before the campaign's next
        await conn.execute("UPDATE job_queue SET state = 'done' WHERE job_id = $1", first)
        claim = await jobs.claim_next(conn, "w5", 60)
        assert claim is not None
        assert claim.job_id == second


async def test_accounts_take_turns_for_the_workers(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """One account's uploads to three campaigns, then another account's one: the other
    account's job is claimed second, not last; a running job counts against its account, and
    a job whose worker is gone does not."""
    account_id, first_campaign = campaign
    campaigns = [first_campaign, *[await make_campaign(pool, account_id, f"c{n}") for n in (2, 3)]]
    busy = [await submit(pool, account_id, c, []) for c in campaigns]
    other_account = await make_account(pool, "other")
    other = await submit(pool, other_account, await make_campaign(pool, other_account), [])
    async with pool.acquire() as conn:
        claims = [await jobs.claim_next(conn, f"w{n}", 60) for n in range(4)]
        assert [c.job_id if c else None for c in claims] == [busy[0], other, busy[1], busy[2]]
    # Their session is gone: none of those jobs runs now, so nothing counts against the
    # account, and the oldest is first again.
    later = await submit(pool, other_account, await make_campaign(pool, other_account, "x"), [])
    async with pool.acquire() as conn:
        claims = [await jobs.claim_next(conn, f"v{n}", 60) for n in range(4)]
        assert [c.job_id if c else None for c in claims] == [busy[0], other, busy[1], later]


async def test_a_running_job_is_retaken_only_once_its_worker_is_gone(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A job under a live lease whose claiming session is alive is not claimed again, nor is
    its campaign's next job; once that session lets go of it (a worker that died), both are
    claimable at once, the running one first, though its lease has an hour to run."""
    account_id, campaign_id = campaign
    first = await submit(pool, account_id, campaign_id, [])
    second = await submit(pool, account_id, campaign_id, [])
    async with pool.acquire() as owner, pool.acquire() as other:
        claim = await jobs.claim_next(owner, "alive", 3600)
        assert claim is not None
        assert (claim.job_id, claim.alive) == (first, True)
        assert await jobs.claim_next(other, "rival", 3600) is None
        await jobs.let_go(owner, claim)
        retaken = await jobs.claim_next(other, "rival", 3600)
        assert retaken is not None
        assert (retaken.job_id, retaken.attempts, retaken.alive) == (first, 2, True)
        assert await jobs.claim_next(owner, "third", 3600) is None  # the rival is alive
        await jobs.let_go(other, retaken)
        await other.execute("UPDATE job_queue SET state = 'done' WHERE job_id = $1", first)
        last = await jobs.claim_next(owner, "third", 3600)
        assert last is not None
        assert last.job_id == second
        await jobs.let_go(owner, last)
        locks = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert await owner.fetchval(locks, JOB_WORKER_NAMESPACE) == 0  # every one let go


async def test_a_job_claimed_while_another_claim_scans_is_not_claimed_again(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """Worker B's claim reads which jobs are alive, then scans past 300,000 running jobs
    (alive: one held lock covers their shared key) while worker A claims job J and commits.
    PostgreSQL re-checks J's new row for B against the list B read before A's lock existed:
    J must not look dead to B (its attempts moved on), so B claims nothing."""
    account_id, campaign_id = campaign
    job = await submit(pool, account_id, campaign_id, [])
    low = (job + 1000) & 0xFFFFFFFF
    lock = "SELECT pg_try_advisory_lock(($1::bigint << 32) | $2)"
    a_claim = """
    UPDATE job_queue q SET state = 'running', lease_owner = 'A',
        lease_until = now() + interval '1 hour', attempts = q.attempts + 1
    WHERE job_id = $1
    RETURNING attempts, pg_try_advisory_lock(($2::bigint << 32) | (q.job_id & 4294967295))
    """
    async with pool.acquire() as holder, pool.acquire() as a, pool.acquire() as b:
        await holder.execute(
            "INSERT INTO job_queue (job_id, account_id, kind, campaign_id, state, lease_owner,"
            " lease_until, available_at)"
            " SELECT $1::bigint + (k::bigint << 32), $2, 'x', NULL, 'running', 'other',"
            " now() + interval '1 hour', now() - interval '1 day'"
            " FROM generate_series(1, 300000) k",
            low,
            account_id,
        )
        assert await holder.fetchval(lock, JOB_WORKER_NAMESPACE, low)
        b_claim = asyncio.ensure_future(jobs.claim_next(b, "B", 3600))
        await asyncio.sleep(0.02)  # B is scanning
        claimed = await a.fetchrow(a_claim, job, JOB_WORKER_NAMESPACE)
        assert claimed is not None
        assert claimed["attempts"] == 1
        assert await b_claim is None


async def test_a_worker_lets_go_of_every_job_it_ran(
    pool: asyncpg.Pool, database_url: str, campaign: tuple[int, int]
) -> None:
    """The serving pools send no reset on release, so a job's liveness lock, a session lock,
    must be let go before its connection goes back: after a worker on such a pool ran jobs, no
    session of the database holds one."""
    account_id, campaign_id = campaign
    await submit(pool, account_id, campaign_id, [LeadFields(phone_numbers=[phone(1)])])
    await submit(pool, account_id, campaign_id, [LeadFields(phone_numbers=[phone(2)])])
    held = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    serving = await create_pool(database_url, min_size=1, max_size=3, session_state=False)
    try:
        async with worker(serving):
            await until(pool, FINISHED)
        # The pool's connections are still open: a lock left on one would still be held.
        assert await pool.fetchval(held, JOB_WORKER_NAMESPACE) == 0
    finally:
        await serving.close()


async def test_a_kinds_preparation_holds_back_no_reader_of_the_feed(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A kind's `prepare` runs before the job's transaction: an event appended meanwhile is in
    the feed at once. In the handler (inside the transaction, its queue row locked) the same
    append is held back by the visibility fence until the job commits."""
    account_id, campaign_id = campaign
    seen: dict[str, bool] = {}

    async def appended_is_visible() -> bool:
        head = await pool.fetchval("SELECT coalesce(max(position), 0) FROM events")
        await submit(pool, account_id, campaign_id, [], kind="other")
        async with pool.acquire() as reader:
            return bool(await read_feed(reader, after=head))

    @asynccontextmanager
    async def prepare(_conn: Connection, _job: Job, payload: bytes) -> AsyncIterator[bytes]:
        seen["prepare"] = await appended_is_visible()
        yield payload

    async def handle(_conn: Connection, _ctx: Context, _job: Job, _payload: bytes) -> JobOutcome:
        seen["handler"] = await appended_is_visible()
        return JobOutcome()

    kinds = {"test_prepared": JobKind(handle, prepare=prepare)}
    await submit(pool, account_id, campaign_id, [], kind="test_prepared")
    async with pool.acquire() as conn:
        claim = await jobs.claim_next(conn, "w1", 60)
        assert claim is not None
        assert await jobs.run_job(conn, "w1", claim, kinds) == "done"
    assert seen == {"prepare": True, "handler": False}


async def test_failing_handler_is_retried_then_job_failed(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A raising handler is retried up to max_attempts, then JobFailed; nothing it wrote stays;
    each failed attempt is logged, and the job failed, with the error's type, never its
    message (which may quote a row's value: neither the log nor the events are sealed)."""
    account_id, campaign_id = campaign
    calls = 0

    async def broken(conn: Connection, ctx: Context, job: Job, payload: bytes) -> JobOutcome:
        nonlocal calls
        calls += 1
        await insert_leads_job(conn, ctx, job, payload)  # writes, then fails: rolled back
        raise RuntimeError("invalid value '9876543210'")

    rows = [LeadFields(phone_numbers=[phone(7)])]
    job_id = await submit(pool, account_id, campaign_id, rows, kind="test_broken")
    kinds = {"test_broken": JobKind(broken)}
    with structlog.testing.capture_logs() as logged:
        async with worker(pool, kinds=kinds, max_attempts=3, retry_seconds=0.01):
            await until(pool, FINISHED)
    assert calls == 3
    failed = [line for line in logged if line["event"] == "job_attempt_failed"]
    assert [(f["log_level"], f["attempt"], f["error"]) for f in failed] == [
        ("warning", n, "RuntimeError") for n in (1, 2, 3)
    ]
    assert "9876543210" not in repr(failed)
    assert await job_events(pool, job_id) == ["JobSubmitted", "JobFailed"]
    row = await pool.fetchrow("SELECT state, error FROM jobs WHERE job_id = $1", job_id)
    assert row is not None
    assert tuple(row) == ("failed", "RuntimeError")
    stored = await pool.fetchval(
        "SELECT data::text FROM events WHERE stream_id = $1 AND type = 'JobFailed'",
        f"job-{job_id}",
    )
    assert "RuntimeError" in stored
    assert "9876543210" not in stored
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_a_job_whose_connection_is_lost_is_queued_again_at_once(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """The job's connection dies under its handler (the server terminated it): the attempt is
    handed back on a new connection, with backoff, and the next attempt completes it, long
    before its lease (an hour here) would have let another worker take it."""
    account_id, campaign_id = campaign
    calls = 0

    async def cut_off(conn: Connection, ctx: Context, job: Job, payload: bytes) -> JobOutcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            await pool.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            await conn.execute("SELECT 1")  # the connection is gone: this raises
        return await insert_leads_job(conn, ctx, job, payload)

    rows = [LeadFields(phone_numbers=[phone(8)])]
    job_id = await submit(pool, account_id, campaign_id, rows, kind="test_cut_off")
    kinds = {"test_cut_off": JobKind(cut_off)}
    async with worker(pool, kinds=kinds, lease_seconds=3600, retry_seconds=0.01):
        await until(pool, FINISHED, wait=20)
    assert calls == 2
    assert await job_events(pool, job_id) == ["JobSubmitted", "JobCompleted"]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 1


async def test_graceful_stop_releases_the_lease(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A worker stopped mid-job rolls it back and hands it back at once, attempt uncounted."""
    account_id, campaign_id = campaign
    started = asyncio.Event()

    async def hangs(conn: Connection, ctx: Context, job: Job, payload: bytes) -> JobOutcome:
        started.set()
        await asyncio.Event().wait()
        return JobOutcome()

    await submit(pool, account_id, campaign_id, [], kind="test_hangs")
    async with worker(pool, kinds={"test_hangs": JobKind(hangs)}, lease_seconds=3600):
        await asyncio.wait_for(started.wait(), 10)
    row = await pool.fetchrow("SELECT state, attempts, lease_until <= now() AS free FROM job_queue")
    assert row is not None
    assert tuple(row) == ("running", 0, True)
    # The next worker can finish it.
    async with worker(pool, "w2", {"test_hangs": JobKind(insert_leads_job)}):
        await until(pool, FINISHED)
    assert await pool.fetchval("SELECT state FROM job_queue") == "done"


async def test_kill_9_mid_job_leaves_nothing_half_done(
    database_url: str, pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A worker killed mid-job (50,000 rows) leaves no lead; another worker takes the job again
    as soon as the dead one's session is gone, long before its hour-long lease ends, and the
    retry inserts each lead exactly once."""
    account_id, campaign_id = campaign
    total = 50_000
    rows = [LeadFields(phone_numbers=[phone(i)]) for i in range(total)]
    job_id = await submit(pool, account_id, campaign_id, rows, check_duplicates=False)
    process = subprocess.Popen(  # noqa: ASYNC220, S603 - our own script; we only kill it
        [
            sys.executable,
            "-m",
            "tests.integration.job_worker_script",
            database_url,
            "doomed",
            "3600",
        ],
        cwd=ROOT,
    )
    try:
        await until(pool, "SELECT EXISTS (SELECT FROM job_queue WHERE lease_owner = 'doomed')")
        await until(pool, IN_RUN_TRANSACTION)  # the worker holds the row: its run began
        await asyncio.sleep(0.3)  # well into the handler's writes
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert await job_events(pool, job_id) == ["JobSubmitted"], "killed too late: job finished"
    async with worker(pool, "survivor", poll_seconds=0.2):
        await until(pool, FINISHED, wait=120)
    assert await job_events(pool, job_id) == ["JobSubmitted", "JobCompleted"]
    assert await pool.fetchval("SELECT count(*) FROM leads") == total
    counts = await pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT value) AS d FROM contacts WHERE kind = 'phone'"
    )
    assert counts is not None
    assert (counts["n"], counts["d"]) == (total, total)
    assert await pool.fetchval("SELECT attempts FROM job_queue") == 2


# --- callbacks ------------------------------------------------------------------------------


async def completed_job(pool: asyncpg.Pool, campaign: tuple[int, int], url: str) -> int:
    account_id, campaign_id = campaign
    rows = [LeadFields(phone_numbers=[phone(3)])]
    job_id = await submit(pool, account_id, campaign_id, rows, callback_url=url)
    async with worker(pool):
        await until(pool, FINISHED)
    return job_id


async def dispatch_until_settled(pool: asyncpg.Pool, *, allow_private: bool) -> None:
    async with aiohttp.ClientSession() as session:
        post = poster(session)
        for _ in range(200):
            await callbacks.dispatch_due(
                pool, post, allow_private=allow_private, backoff_seconds=0.01
            )
            if await pool.fetchval(
                "SELECT bool_and(delivered_at IS NOT NULL OR abandoned_at IS NOT NULL)"
                " FROM callback_outbox"
            ):
                return
            await asyncio.sleep(0.02)
    raise AssertionError("callback never settled")


async def test_callback_retried_on_500_then_delivered(
    pool: asyncpg.Pool, campaign: tuple[int, int], aiohttp_server: AiohttpServer
) -> None:
    """The callback is POSTed as JSON; two 500s are retried with backoff, the third delivers."""
    bodies: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(status=500 if len(bodies) < 3 else 200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app)
    job_id = await completed_job(pool, campaign, str(server.make_url("/hook")))
    await dispatch_until_settled(pool, allow_private=True)
    assert len(bodies) == 3
    assert bodies[0] == {
        "job_id": job_id,
        "state": "done",
        "upload_ref": "book-1",
        "received": 1,
        "inserted": 1,
        "updated": 0,
        "reassigned": 0,
        "rejected": 0,
        "rejected_rows": [],
    }
    attempts = msgspec.json.decode(
        await pool.fetchval("SELECT callback_attempts FROM jobs WHERE job_id = $1", job_id)
    )
    assert [(a["status_code"], a["delivered"]) for a in attempts] == [
        (500, False),
        (500, False),
        (200, True),
    ]
    assert await pool.fetchval("SELECT callback_state FROM jobs") == "delivered"


async def test_callback_to_loopback_refused_when_not_allowed(
    pool: asyncpg.Pool, campaign: tuple[int, int], aiohttp_server: AiohttpServer
) -> None:
    """Without callback_allow_private, 127.0.0.1 is never called: one refused attempt, abandoned,
    logged at warning level with the setting that allows it."""
    hits: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app, host="127.0.0.1")
    job_id = await completed_job(pool, campaign, str(server.make_url("/hook")))
    with structlog.testing.capture_logs() as logged:
        await dispatch_until_settled(pool, allow_private=False)
    assert hits == []
    attempts_logged = [line for line in logged if line["event"] == "callback_attempted"]
    assert [(line["log_level"], line["error"]) for line in attempts_logged] == [
        ("warning", callbacks.PRIVATE_TARGET)
    ]
    assert "LEDGER_CALLBACK_ALLOW_PRIVATE=1" in callbacks.PRIVATE_TARGET
    assert await job_events(pool, job_id) == [
        "JobSubmitted",
        "JobCompleted",
        "CallbackAttempted",
        "CallbackAbandoned",
    ]
    attempts = msgspec.json.decode(
        await pool.fetchval("SELECT callback_attempts FROM jobs WHERE job_id = $1", job_id)
    )
    assert [a["error"] for a in attempts] == [callbacks.PRIVATE_TARGET]
    assert await pool.fetchval("SELECT callback_state FROM jobs") == "abandoned"


async def test_callback_abandoned_after_max_attempts(
    pool: asyncpg.Pool, campaign: tuple[int, int], aiohttp_server: AiohttpServer
) -> None:
    """A receiver that always fails gets exactly MAX_ATTEMPTS tries, then CallbackAbandoned."""
    hits: list[int] = []

    async def receive(request: web.Request) -> web.Response:
        hits.append(1)
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app)
    job_id = await completed_job(pool, campaign, str(server.make_url("/hook")))
    await dispatch_until_settled(pool, allow_private=True)
    assert len(hits) == callbacks.MAX_ATTEMPTS
    events = await job_events(pool, job_id)
    assert events.count("CallbackAttempted") == callbacks.MAX_ATTEMPTS
    assert events[-1] == "CallbackAbandoned"


async def test_a_host_that_does_not_resolve_is_retried_until_the_last_attempt(
    pool: asyncpg.Pool, campaign: tuple[int, int]
) -> None:
    """A DNS failure may pass: every attempt is made, each recording why, before abandonment,
    whether or not private targets are allowed."""
    for allow_private in (False, True):
        await pool.execute("DELETE FROM callback_outbox")
        job_id = await completed_job(pool, campaign, "https://no-such-host.invalid/hook")
        with structlog.testing.capture_logs() as logs:
            await dispatch_until_settled(pool, allow_private=allow_private)
        attempted = [e for e in logs if e["event"] == "callback_attempted"]
        assert attempted
        assert not [e for e in attempted if "no-such-host" in str(e)]  # logs hold no host
        events = await job_events(pool, job_id)
        assert events.count("CallbackAttempted") == callbacks.MAX_ATTEMPTS
        assert events[-1] == "CallbackAbandoned"
        errors = await pool.fetch(
            "SELECT data->>'error' AS error FROM events"
            " WHERE stream_id = $1 AND type = 'CallbackAttempted'",
            f"job-{job_id}",
        )
        assert all("no-such-host.invalid" in row["error"] for row in errors), errors


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://224.0.0.1/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://localhost/hook",
        "http://100.100.100.200/latest/meta-data/",  # shared address space (100.64.0.0/10)
        "http://192.0.2.10/hook",  # documentation
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
        "http://[2002:a01:203::1]/",  # 6to4 of 10.1.2.3
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo, client 192.0.2.45
        "http://[fc00::1]/",  # unique local
    ],
)
async def test_private_targets_are_refused(url: str) -> None:
    """Every address that is not global is refused unless allowed (loopback, private, shared,
    link-local, multicast, documentation), and so is an IPv6 address carrying one."""
    assert await callbacks.refusal(url, allow_private=False) == callbacks.PRIVATE_TARGET
    assert await callbacks.refusal(url, allow_private=True) is None


BAD_PORT = "callback URL's port must be 1 to 65535"
BAD_HOST = "callback URL's host is neither a host name nor an address"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:99999/hook", BAD_PORT),
        ("http://127.0.0.1:0/hook", BAD_PORT),
        ("http://%zz/hook", BAD_HOST),
        ("http://xn--/hook", BAD_HOST),
        ("http://a..b/hook", BAD_HOST),
        ("http://-a.example/", BAD_HOST),
        (f"http://{'a' * 64}.example/", BAD_HOST),
        ("http://[::1/hook", callbacks.NOT_HTTP),  # urlsplit: "Invalid IPv6 URL"
        ("http://\u2100.com/hook", callbacks.NOT_HTTP),  # a host NFKC changes
    ],
)
async def test_a_url_no_client_could_call_is_refused_even_where_private_targets_are_allowed(
    url: str, why: str
) -> None:
    """A port beyond 65535 or 0, a host name with an empty, over-long or ill-formed label:
    refused whatever the address rules, so such a target is never tried again and again."""
    assert await callbacks.refusal(url, allow_private=True) == why
    assert await callbacks.refusal(url, allow_private=False) == why


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://[::1]:1/",
        "http://my_service:80/",
        "http://xn--mnchen-3ya.de/",
    ],
)
async def test_hosts_of_every_kind_pass_where_private_targets_are_allowed(url: str) -> None:
    """Addresses of both families, a service name with `_`, an IDNA name: taken."""
    assert await callbacks.refusal(url, allow_private=True) is None


async def test_public_target_is_allowed() -> None:
    """A public address passes; a URL that is not http(s) never does."""
    assert await callbacks.refusal("https://8.8.8.8/hook", allow_private=False) is None
    # IPv6 addresses that are global, and that carry a global IPv4 one.
    for public in ("2606:4700:4700::1111", "2002:808:808::1"):
        assert await callbacks.refusal(f"https://[{public}]/hook", allow_private=False) is None
    refused = await callbacks.refusal("file:///etc/passwd", allow_private=True)
    assert refused == "callback URL must be http or https with a host"


async def test_connecting_refuses_a_name_that_resolves_to_a_private_address(
    aiohttp_server: AiohttpServer,
) -> None:
    """The check is made again on the addresses the session connects to: a host name that
    resolves to loopback is not reached even when nothing checked it first (as when its DNS
    answer changed after `refusal` looked), unless private targets are allowed."""
    hits: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        hits.append(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = f"http://localhost:{server.port}/hook"
    async with callback_session(allow_private=False) as session:
        with pytest.raises(OSError, match=re.escape(callbacks.PRIVATE_TARGET)):
            await poster(session)(url, b"{}")
    assert hits == []
    async with callback_session(allow_private=True) as session:
        assert await poster(session)(url, b"{}") == 200
    assert hits == [b"{}"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed(aiohttp_server: AiohttpServer, status: int) -> None:
    """A receiver that redirects (here to a private address) is answered with its redirect
    status, a failed attempt, and the target is never reached: a redirect's hops would escape
    the address rule, which checks the URL the dispatcher was given."""
    hits: list[str] = []

    async def redirect(_request: web.Request) -> web.Response:
        location = f"http://127.0.0.1:{server.port}/internal"
        return web.Response(status=status, headers={"Location": location})

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.method)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", redirect)
    app.router.add_route("*", "/internal", internal)
    server = await aiohttp_server(app, host="127.0.0.1")
    async with callback_session(allow_private=True) as session:
        assert await poster(session)(f"http://127.0.0.1:{server.port}/hook", b"{}") == status
    assert hits == []


async def test_retries_back_off_exponentially_up_to_the_cap(
    pool: asyncpg.Pool, campaign: tuple[int, int], aiohttp_server: AiohttpServer
) -> None:
    """Each failed attempt waits twice as long as the one before, from `backoff_seconds`, never
    longer than MAX_BACKOFF_SECONDS; after the last attempt there is no wait but abandonment."""

    async def refuse(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    server = await aiohttp_server(app)
    await completed_job(pool, campaign, str(server.make_url("/hook")))
    wait = "SELECT extract(epoch FROM next_attempt_at - now()) FROM callback_outbox"
    base = callbacks.MAX_BACKOFF_SECONDS / 5
    waits = []
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            # Due now: each attempt is made at once instead of after its wait.
            await pool.execute("UPDATE callback_outbox SET next_attempt_at = now()")
            attempted = await callbacks.dispatch_due(
                pool, poster(session), allow_private=True, max_attempts=5, backoff_seconds=base
            )
            assert attempted == 1
            waits.append(await pool.fetchval(wait))
    expected = [base, 2 * base, 4 * base, callbacks.MAX_BACKOFF_SECONDS]
    assert [round(float(w)) for w in waits[:4]] == [round(e) for e in expected]
    assert await pool.fetchval("SELECT abandoned_at IS NOT NULL FROM callback_outbox")
    assert await pool.fetchval("SELECT attempts FROM callback_outbox") == 5
