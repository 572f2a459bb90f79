"""A bulk job's life: submit (event + payload + queue row), claim with a lease, run in one
transaction, then complete, fail, or go back to the queue.

A job's leads, its JobCompleted, its callback outbox row and its queue row's `done` commit
together, so a worker that dies mid-job leaves nothing behind and the job simply runs again.
While it runs, the worker holds the queue row's lock (FOR UPDATE), so no other worker can claim
it, even if the lease expires; the lease only covers the gap between claim and that lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM, Actor
from lead_ledger.ledger.job_events import (
    CellValue,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    stream_of_job,
)
from lead_ledger.ledger.locks import (
    JOB_WORKER_NAMESPACE,
    LOCK_XACT,
    account_lock_key,
    lock_campaigns,
)
from lead_ledger.ledger.store import read_stream
from lead_ledger.service.jobs.kinds import Job, JobKinds, JobOutcome
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, record, stream_append

log = structlog.get_logger(__name__)

CHANNEL: Final = "ledger_jobs"
CALLBACK_CHANNEL: Final = "ledger_callbacks"
MAX_ATTEMPTS: Final = 3
RETRY_SECONDS: Final = 5.0  # first retry delay; doubles per attempt
MAX_RETRY_SECONDS: Final = 300.0

NEXT_JOB_ID: Final = "SELECT nextval('job_ids')"
INSERT_PAYLOAD: Final = "INSERT INTO job_payloads (job_id, payload) VALUES ($1, $2)"
INSERT_QUEUE: Final = """
INSERT INTO job_queue (job_id, account_id, kind, campaign_id) VALUES ($1, $2, $3, $4)
"""
NOTIFY: Final = "SELECT pg_notify($1, $2)"
# A job whose campaign has a job running under a live lease waits for it: it would only block on
# the campaign's lock, holding a worker that a job of another campaign could use. A running job
# whose worker died is claimable at once: its worker's session, and so the job's liveness lock
# (ledger/locks.py; $3 its namespace), is gone. `alive` lists the jobs whose lock a session of
# this database holds (a bigint advisory key shows as classid, its high 32 bits, objid, its low
# 32 bits, and objsubid 1; a job's key is its namespace and the low 32 bits of its id), read
# once. `dead` is the running jobs without one, each with its attempts: a job claimed by another
# worker after `alive` was read (its row re-checked when that claim commits, against the list
# read before it) has one attempt more, so the stale list cannot hand it over a second time.
# Which job goes first: accounts take turns. A job's turn is its place among its account's
# claimable jobs (oldest first) plus the jobs the account has running, so that one account's
# fifty uploads across fifty campaigns hold back another account's one upload by at most one
# job, not fifty; within an account, and between accounts on the same turn, the oldest first.
# The turns are counted once (`turns`). `next` repeats the row's own conditions: a row that
# another claim changed after this statement's snapshot is re-checked against the conditions
# of the level that locks it, and only those (the subqueries keep their snapshot).
CLAIM_NEXT: Final = """
WITH alive AS MATERIALIZED (
    SELECT objid::bigint AS low FROM pg_locks
    WHERE locktype = 'advisory' AND classid = $3::bigint::oid AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
),
dead AS MATERIALIZED (
    SELECT job_id, attempts FROM job_queue
    WHERE state = 'running' AND lease_until >= now()
      AND (job_id & 4294967295) NOT IN (SELECT low FROM alive)
),
running AS MATERIALIZED (
    SELECT account_id, count(*) AS jobs FROM job_queue
    WHERE state = 'running' AND lease_until >= now()
      AND (job_id & 4294967295) IN (SELECT low FROM alive)
    GROUP BY account_id
),
turns AS MATERIALIZED (
    SELECT q.job_id,
        row_number() OVER (PARTITION BY q.account_id ORDER BY q.available_at, q.job_id)
        + coalesce((SELECT jobs FROM running WHERE running.account_id = q.account_id), 0)
        AS turn
    FROM job_queue q
    WHERE q.available_at <= now()
      AND (q.state = 'queued'
           OR (q.state = 'running'
               AND (q.lease_until < now()
                    OR (q.job_id, q.attempts) IN (SELECT job_id, attempts FROM dead))))
      AND NOT EXISTS (
          SELECT 1 FROM job_queue r
          WHERE r.campaign_id = q.campaign_id AND r.state = 'running'
            AND r.lease_until >= now() AND r.job_id <> q.job_id
            AND (r.job_id & 4294967295) IN (SELECT low FROM alive))
),
next AS (
    SELECT q.job_id FROM job_queue q JOIN turns ON turns.job_id = q.job_id
    WHERE q.available_at <= now()
      AND (q.state = 'queued'
           OR (q.state = 'running'
               AND (q.lease_until < now()
                    OR (q.job_id, q.attempts) IN (SELECT job_id, attempts FROM dead))))
    ORDER BY turns.turn, q.available_at, q.job_id
    LIMIT 1
    FOR UPDATE OF q SKIP LOCKED
)
UPDATE job_queue q
SET state = 'running', lease_owner = $1, lease_until = now() + make_interval(secs => $2),
    attempts = q.attempts + 1
FROM next WHERE q.job_id = next.job_id
RETURNING q.job_id, q.attempts, q.campaign_id,
    pg_try_advisory_lock(($3::bigint << 32) | (q.job_id & 4294967295)) AS alive
"""
LET_GO: Final = "SELECT pg_advisory_unlock(($2::bigint << 32) | ($1::bigint & 4294967295))"
# Taken in the run transaction and held to its end: claimers skip the locked row. A row lock
# assigns the transaction id, so the job's campaign lock must come before it (see run_job).
LOCK_CLAIMED: Final = """
SELECT attempts FROM job_queue
WHERE job_id = $1 AND lease_owner = $2 AND state = 'running'
FOR UPDATE
"""
SELECT_PAYLOAD: Final = "SELECT payload FROM job_payloads WHERE job_id = $1"
DELETE_PAYLOAD: Final = "DELETE FROM job_payloads WHERE job_id = $1"
FINISH: Final = """
UPDATE job_queue SET state = $2, lease_owner = NULL, lease_until = NULL WHERE job_id = $1
"""
REQUEUE: Final = """
UPDATE job_queue
SET state = 'queued', lease_owner = NULL, lease_until = NULL,
    available_at = now() + make_interval(secs => $3)
WHERE job_id = $1 AND lease_owner = $2
"""
# A graceful stop hands the job back at once and does not count the interrupted attempt.
RELEASE: Final = """
UPDATE job_queue SET lease_until = now(), attempts = greatest(attempts - 1, 0)
WHERE job_id = $1 AND lease_owner = $2 AND state = 'running'
"""
INSERT_OUTBOX: Final = """
INSERT INTO callback_outbox (job_id, account_id, url, body) VALUES ($1, $2, $3, $4)
"""


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    job_id: int
    attempts: int
    campaign_id: int | None = None
    # Whether the claiming connection holds the job's liveness lock (`let_go` when done). Not
    # when a worker whose lease ran out still held it: this claim then relies on its lease.
    alive: bool = False


async def submit_job(  # noqa: PLR0913 - one keyword per JobSubmitted field
    conn: Connection,
    ctx: Context,
    *,
    account_id: int,
    dialect: str,
    kind: str,
    campaign_id: int | None,
    payload: bytes,
    received: int,
    callback_url: str | None = None,
    upload_ref: str | None = None,
    options: dict[str, CellValue] | None = None,
) -> int:
    """Record the job, store its payload and queue it; joins the caller's write transaction."""
    async with write_transaction(conn):
        job_id: int = await conn.fetchval(NEXT_JOB_ID)
        event = JobSubmitted(
            job_id=job_id,
            account_id=account_id,
            dialect=dialect,
            kind=kind,
            campaign_id=campaign_id,
            received=received,
            callback_url=callback_url,
            upload_ref=upload_ref,
            options=options or {},
        )
        ctx = msgspec.structs.replace(ctx, job_id=str(job_id))
        await record(
            conn,
            [stream_append(ctx, stream_of_job(job_id), NO_STREAM, [event], account_id=account_id)],
        )
        await conn.execute(INSERT_PAYLOAD, job_id, payload)
        await conn.execute(INSERT_QUEUE, job_id, account_id, kind, campaign_id)
        await conn.execute(NOTIFY, CHANNEL, str(job_id))  # delivered at commit
    return job_id


async def claim_next(conn: Connection, worker_id: str, lease_seconds: float) -> Claim | None:
    """Lease the oldest runnable job (queued, or running with an expired lease or a dead
    worker), if any; the claiming connection holds its liveness lock until `let_go`."""
    row = await conn.fetchrow(CLAIM_NEXT, worker_id, float(lease_seconds), JOB_WORKER_NAMESPACE)
    if row is None:
        return None
    return Claim(
        job_id=row["job_id"],
        attempts=row["attempts"],
        campaign_id=row["campaign_id"],
        alive=row["alive"],
    )


async def let_go(conn: Connection, claim: Claim) -> None:
    """The claiming connection's part is over (the job ended, or was handed back): drop the
    job's liveness lock before the connection goes back to the pool. When the connection
    cannot (the attempt broke it), it is closed, which drops the lock with its session."""
    if not claim.alive:
        return
    try:
        await conn.execute(LET_GO, claim.job_id, JOB_WORKER_NAMESPACE)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        conn.terminate()


async def release(conn: Connection, job_id: int, worker_id: str) -> None:
    """Hand a claimed job back (graceful stop): its lease ends now."""
    await conn.execute(RELEASE, job_id, worker_id)


async def load_job(conn: Connection, job_id: int, attempts: int = 0) -> tuple[Job, Context]:
    """The job from its JobSubmitted, and a context carrying the submitter as actor."""
    first = (await read_stream(conn, stream_of_job(job_id), up_to_version=1))[0]
    submitted = msgspec.json.decode(first.data, type=JobSubmitted)
    meta = first.decoded_metadata()
    job = Job(attempts=attempts, **msgspec.structs.asdict(submitted))
    ctx = Context(
        actor=meta.actor or Actor(dialect=submitted.dialect, account_id=submitted.account_id),
        job_id=str(job_id),
        correlation_id=meta.correlation_id or meta.request_id,
    )
    return job, ctx


async def run_job(
    conn: Connection,
    worker_id: str,
    claim: Claim,
    kinds: JobKinds,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    retry_seconds: float = RETRY_SECONDS,
) -> str:
    """Run a claimed job with the handler of its kind in `kinds`; returns its queue state after
    (done, failed, queued, or lost)."""
    try:
        async with _prepared(conn, claim, kinds, max_attempts) as prepared, write_transaction(conn):
            if claim.campaign_id is not None:
                # Before the row lock, which takes a transaction id: the feed orders events by
                # transaction id, so a lead's writers must hold its campaign lock from before
                # then (docs/decisions.md, "Locks before the first write").
                await lock_campaigns(conn, [claim.campaign_id])
            job, ctx = await load_job(conn, claim.job_id, claim.attempts)
            kind = kinds.get(job.kind)
            if kind is not None and kind.locks_account is not None and kind.locks_account(job):
                await conn.execute(LOCK_XACT, account_lock_key(job.account_id))
            if await conn.fetchval(LOCK_CLAIMED, claim.job_id, worker_id) is None:
                return "lost"  # the lease expired and another worker took the job
            if claim.attempts > max_attempts:
                # Earlier attempts crashed their workers; do not try a poison job forever.
                await _fail(conn, ctx, job, kinds, f"gave up after {max_attempts} attempts")
                return "failed"
            if kind is None:
                await _fail(conn, ctx, job, kinds, f"no handler for job kind {job.kind!r}")
                return "failed"
            payload: bytes = (
                prepared
                if prepared is not None
                else await conn.fetchval(SELECT_PAYLOAD, claim.job_id)
            )
            outcome = await kind.handler(conn, ctx, job, payload)
            if outcome.error is not None:
                await _fail(conn, ctx, job, kinds, outcome.error)
                return "failed"
            await _complete(conn, ctx, job, outcome)
            return "done"
    except Exception as error:  # noqa: BLE001 - any handler error is the job's failure
        return await after_error(conn, worker_id, claim, kinds, error, max_attempts, retry_seconds)


@asynccontextmanager
async def _prepared(
    conn: Connection, claim: Claim, kinds: JobKinds, max_attempts: int
) -> AsyncIterator[bytes | None]:
    """What the kind's `prepare` yields for this job, made before its transaction (None for
    kinds without one, and for a job about to be failed for its attempts)."""
    if claim.attempts > max_attempts:
        yield None
        return
    job, _ = await load_job(conn, claim.job_id, claim.attempts)
    kind = kinds.get(job.kind)
    if kind is None or kind.prepare is None:
        yield None
        return
    payload: bytes = await conn.fetchval(SELECT_PAYLOAD, claim.job_id)
    async with kind.prepare(conn, job, payload) as prepared:
        yield prepared


async def _complete(conn: Connection, ctx: Context, job: Job, outcome: JobOutcome) -> None:
    event = JobCompleted(
        job_id=job.job_id,
        inserted=outcome.inserted,
        updated=outcome.updated,
        reassigned=outcome.reassigned,
        rejected=len(outcome.rejected_rows),
        rejected_rows=outcome.rejected_rows,
        rejected_columns=list(dict.fromkeys(n for r in outcome.rejected_rows for n in r.row or ())),
        output=outcome.output,
    )
    body = outcome.callback_body
    if body is None:
        # Spelled out: the event omits zero counts (omit_defaults), a receiver should not.
        body = {
            "job_id": job.job_id,
            "state": "done",
            "upload_ref": job.upload_ref,
            "received": job.received,
            "inserted": event.inserted,
            "updated": event.updated,
            "reassigned": event.reassigned,
            "rejected": event.rejected,
            "rejected_rows": msgspec.to_builtins(event.rejected_rows),
        }
    await _finish(conn, ctx, job, event, "done", body)


async def _fail(conn: Connection, ctx: Context, job: Job, kinds: JobKinds, error: str) -> None:
    event = JobFailed(job_id=job.job_id, error=error)
    kind = kinds.get(job.kind)
    vendor_body = kind.failure_body if kind is not None else None
    body = (
        vendor_body(job, error)
        if vendor_body is not None
        else {"job_id": job.job_id, "state": "failed", "upload_ref": job.upload_ref, "error": error}
    )
    await _finish(conn, ctx, job, event, "failed", body)


async def _finish(
    conn: Connection,
    ctx: Context,
    job: Job,
    event: JobCompleted | JobFailed,
    state: str,
    body: dict[str, Any],
) -> None:
    stream = stream_of_job(job.job_id)
    await record(
        conn, [stream_append(ctx, stream, ANY_VERSION, [event], account_id=job.account_id)]
    )
    if job.callback_url:
        await conn.execute(
            INSERT_OUTBOX,
            job.job_id,
            job.account_id,
            job.callback_url,
            msgspec.json.encode(body).decode(),  # text: sent as built (migration 0021)
        )
        await conn.execute(NOTIFY, CALLBACK_CHANNEL, str(job.job_id))
    await conn.execute(FINISH, job.job_id, state)
    await conn.execute(DELETE_PAYLOAD, job.job_id)  # the outcome is in the log now


async def after_error(
    conn: Connection,
    worker_id: str,
    claim: Claim,
    kinds: JobKinds,
    error: Exception,
    max_attempts: int,
    retry_seconds: float,
) -> str:
    """The run rolled back: retry later with backoff, or record JobFailed after the last try."""
    # The error's type and SQLSTATE only, in the log and in JobFailed alike: a message may
    # quote a row's value (a driver's "invalid input syntax ... '<the value>'"), and neither
    # the log nor the job's events are sealed. An operator sees at once why an attempt failed.
    log.warning(
        "job_attempt_failed",
        job_id=claim.job_id,
        attempt=claim.attempts,
        error=type(error).__name__,
        sqlstate=getattr(error, "sqlstate", None),
    )
    async with write_transaction(conn):
        if await conn.fetchval(LOCK_CLAIMED, claim.job_id, worker_id) is None:
            return "lost"
        if claim.attempts >= max_attempts:
            job, ctx = await load_job(conn, claim.job_id, claim.attempts)
            await _fail(conn, ctx, job, kinds, _failure(error))
            return "failed"
        delay = min(retry_seconds * 2 ** (claim.attempts - 1), MAX_RETRY_SECONDS)
        await conn.execute(REQUEUE, claim.job_id, worker_id, delay)
    return "queued"


def _failure(error: Exception) -> str:
    """What JobFailed records of an error: its type, and its SQLSTATE when the database raised
    it; never its message (see after_error)."""
    sqlstate = getattr(error, "sqlstate", None)
    return f"{type(error).__name__} (SQLSTATE {sqlstate})" if sqlstate else type(error).__name__
