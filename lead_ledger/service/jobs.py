"""Bulk jobs: submit (event + payload + queue row), claim with a lease, run in one transaction.

A job's leads, its JobCompleted, its callback outbox row and its queue row's `done` commit
together, so a worker that dies mid-job leaves nothing behind and the job simply runs again.
While it runs, the worker holds the queue row's lock (FOR UPDATE), so no other worker can claim
it, even if the lease expires; the lease only covers the gap between claim and that lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM, Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.ledger.job_events import (
    CellValue,
    JobCompleted,
    JobFailed,
    JobSubmitted,
    RejectedRow,
    stream_of_job,
)
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.store import read_stream
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, record, stream_append

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
CLAIM_NEXT: Final = """
WITH next AS (
    SELECT job_id FROM job_queue
    WHERE available_at <= now()
      AND (state = 'queued' OR (state = 'running' AND lease_until < now()))
    ORDER BY available_at, job_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE job_queue q
SET state = 'running', lease_owner = $1, lease_until = now() + make_interval(secs => $2),
    attempts = q.attempts + 1
FROM next WHERE q.job_id = next.job_id
RETURNING q.job_id, q.attempts, q.campaign_id
"""
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


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A submitted job as a handler sees it."""

    job_id: int
    account_id: int
    dialect: str
    kind: str
    campaign_id: int | None
    received: int
    callback_url: str | None
    upload_ref: str | None
    options: dict[str, CellValue]
    attempts: int


class JobOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a handler did; `callback_body` replaces the generic callback (vendor shapes)."""

    inserted: int = 0
    updated: int = 0
    reassigned: int = 0
    rejected_rows: list[RejectedRow] = []
    callback_body: dict[str, Any] | None = None


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    job_id: int
    attempts: int
    campaign_id: int | None = None


JobHandler = Callable[[Connection, Context, Job, bytes], Awaitable[JobOutcome]]
# The callback body of a failed job, for dialects whose callback has a shape of its own.
FailureBody = Callable[[Job, str], dict[str, Any]]
HANDLERS: Final[dict[str, JobHandler]] = {}
FAILURE_BODIES: Final[dict[str, FailureBody]] = {}


def register(kind: str, handler: JobHandler, *, failure_body: FailureBody | None = None) -> None:
    """Route jobs of `kind` to `handler`, which writes through the lead services; a failed
    job's callback is `failure_body(job, error)` when given, else the generic failure body."""
    HANDLERS[kind] = handler
    if failure_body is not None:
        FAILURE_BODIES[kind] = failure_body


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
    """Lease the oldest runnable job (queued, or running with an expired lease), if any."""
    row = await conn.fetchrow(CLAIM_NEXT, worker_id, float(lease_seconds))
    if row is None:
        return None
    return Claim(job_id=row["job_id"], attempts=row["attempts"], campaign_id=row["campaign_id"])


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
    *,
    max_attempts: int = MAX_ATTEMPTS,
    retry_seconds: float = RETRY_SECONDS,
) -> str:
    """Run a claimed job; returns its queue state after (done, failed, queued, or lost)."""
    try:
        async with write_transaction(conn):
            if claim.campaign_id is not None:
                # Before the row lock, which takes a transaction id: the feed orders events by
                # transaction id, so a lead's writers must hold its campaign lock from before
                # then (docs/decisions.md, "Locks before the first write").
                await lock_campaigns(conn, [claim.campaign_id])
            if await conn.fetchval(LOCK_CLAIMED, claim.job_id, worker_id) is None:
                return "lost"  # the lease expired and another worker took the job
            job, ctx = await load_job(conn, claim.job_id, claim.attempts)
            if claim.attempts > max_attempts:
                # Earlier attempts crashed their workers; do not try a poison job forever.
                await _fail(conn, ctx, job, f"gave up after {max_attempts} attempts")
                return "failed"
            handler = HANDLERS.get(job.kind)
            if handler is None:
                await _fail(conn, ctx, job, f"no handler for job kind {job.kind!r}")
                return "failed"
            payload: bytes = await conn.fetchval(SELECT_PAYLOAD, claim.job_id)
            outcome = await handler(conn, ctx, job, payload)
            await _complete(conn, ctx, job, outcome)
            return "done"
    except Exception as error:  # noqa: BLE001 - any handler error is the job's failure
        return await _after_error(conn, worker_id, claim, error, max_attempts, retry_seconds)


async def _complete(conn: Connection, ctx: Context, job: Job, outcome: JobOutcome) -> None:
    event = JobCompleted(
        job_id=job.job_id,
        inserted=outcome.inserted,
        updated=outcome.updated,
        reassigned=outcome.reassigned,
        rejected=len(outcome.rejected_rows),
        rejected_rows=outcome.rejected_rows,
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


async def _fail(conn: Connection, ctx: Context, job: Job, error: str) -> None:
    event = JobFailed(job_id=job.job_id, error=error)
    vendor_body = FAILURE_BODIES.get(job.kind)
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
            INSERT_OUTBOX, job.job_id, job.account_id, job.callback_url, msgspec.json.encode(body)
        )
        await conn.execute(NOTIFY, CALLBACK_CHANNEL, str(job.job_id))
    await conn.execute(FINISH, job.job_id, state)
    await conn.execute(DELETE_PAYLOAD, job.job_id)  # the outcome is in the log now


async def _after_error(
    conn: Connection,
    worker_id: str,
    claim: Claim,
    error: Exception,
    max_attempts: int,
    retry_seconds: float,
) -> str:
    """The run rolled back: retry later with backoff, or record JobFailed after the last try."""
    async with write_transaction(conn):
        if await conn.fetchval(LOCK_CLAIMED, claim.job_id, worker_id) is None:
            return "lost"
        if claim.attempts >= max_attempts:
            job, ctx = await load_job(conn, claim.job_id, claim.attempts)
            await _fail(conn, ctx, job, f"{type(error).__name__}: {error}")
            return "failed"
        delay = min(retry_seconds * 2 ** (claim.attempts - 1), MAX_RETRY_SECONDS)
        await conn.execute(REQUEUE, claim.job_id, worker_id, delay)
    return "queued"


# --- reads ------------------------------------------------------------------------------------

SELECT_JOB: Final = """
SELECT j.job_id, j.kind, j.dialect, j.campaign_id, j.upload_ref, j.state, j.received,
       j.inserted, j.updated, j.reassigned, j.rejected, j.rejected_rows, j.error,
       j.submitted_at, j.completed_at, j.callback_url, j.callback_state, j.callback_attempts,
       q.state AS queue_state, coalesce(q.attempts, 0) AS attempts
FROM jobs j LEFT JOIN job_queue q USING (job_id)
WHERE j.job_id = $1 AND j.account_id = $2
"""


class JobCounts(msgspec.Struct, frozen=True, kw_only=True):
    received: int
    inserted: int
    updated: int
    reassigned: int
    rejected: int


class JobTimings(msgspec.Struct, frozen=True, kw_only=True):
    submitted_at: datetime
    completed_at: datetime | None


class CallbackAttemptView(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    url: str
    at: datetime
    delivered: bool
    status_code: int | None = None
    error: str | None = None


class CallbackView(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    state: str  # pending | delivered | abandoned
    attempts: list[CallbackAttemptView]


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the API shows it: state, counts, rejected rows, timings, callback attempts."""

    job_id: int
    kind: str
    dialect: str
    campaign_id: int | None
    upload_ref: str | None
    state: str  # queued | running | done | failed
    attempts: int
    counts: JobCounts
    rejected_rows: list[RejectedRow]
    error: str | None
    timings: JobTimings
    callback: CallbackView | None


async def get_job(conn: Connection, account_id: int, job_id: int) -> JobView | None:
    """The account's job, or None (a job of another account is a missing one)."""
    row = await conn.fetchrow(SELECT_JOB, job_id, account_id)
    if row is None:
        return None
    state = row["state"]
    if state == "queued" and row["queue_state"] == "running":
        state = "running"  # the log knows submitted and finished; the queue knows running
    callback = None
    if row["callback_url"]:
        callback = CallbackView(
            url=row["callback_url"],
            state=row["callback_state"] or "pending",
            attempts=msgspec.json.decode(row["callback_attempts"], type=list[CallbackAttemptView]),
        )
    return JobView(
        job_id=row["job_id"],
        kind=row["kind"],
        dialect=row["dialect"],
        campaign_id=row["campaign_id"],
        upload_ref=row["upload_ref"],
        state=state,
        attempts=row["attempts"],
        counts=JobCounts(
            received=row["received"],
            inserted=row["inserted"],
            updated=row["updated"],
            reassigned=row["reassigned"],
            rejected=row["rejected"],
        ),
        rejected_rows=msgspec.json.decode(row["rejected_rows"], type=list[RejectedRow]),
        error=row["error"],
        timings=JobTimings(submitted_at=row["submitted_at"], completed_at=row["completed_at"]),
        callback=callback,
    )


# --- the built-in kind "insert_leads" (tests, and dialects whose rows are already canonical) ---


class InsertLeadsPayload(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: int
    check_duplicates: bool = True
    rows: list[LeadFields] = []


DUPLICATE: Final = "duplicate phone number in campaign"
NO_PHONE: Final = "a lead needs at least one phone number"


async def insert_leads_job(conn: Connection, ctx: Context, job: Job, payload: bytes) -> JobOutcome:
    """Insert the rows; rows without a phone and duplicates become rejected rows."""
    request = msgspec.json.decode(payload, type=InsertLeadsPayload)
    numbered = list(enumerate(request.rows, start=1))
    valid = [(n, row) for n, row in numbered if row.phone_numbers]
    rejected = {n: NO_PHONE for n, row in numbered if not row.phone_numbers}
    result = await insert_leads(
        conn,
        ctx,
        account_id=job.account_id,
        campaign_id=request.campaign_id,
        rows=[row for _, row in valid],
        check_duplicates=request.check_duplicates,
    )
    rejected |= {valid[i][0]: DUPLICATE for i in result.duplicates}
    rows = dict(numbered)
    return JobOutcome(
        inserted=len(result.inserted),
        rejected_rows=[
            RejectedRow(
                row_number=n,
                row={"phone_numbers": ", ".join(rows[n].phone_numbers)},
                description=reason,
            )
            for n, reason in sorted(rejected.items())
        ],
    )


register("insert_leads", insert_leads_job)
