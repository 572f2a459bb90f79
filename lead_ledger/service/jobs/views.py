"""Bulk jobs as the API shows them: state, counts, rejected rows, timings, callback attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.job_events import RejectedRow
from lead_ledger.service.inputs import BIGINT_MAX
from lead_ledger.service.reads import campaign_named

# The log knows submitted and finished; the queue knows which queued job is running now.
_COLUMNS: Final = """
SELECT j.job_id, j.kind, j.dialect, j.campaign_id, j.upload_ref,
       CASE WHEN j.state = 'queued' AND q.state = 'running' THEN 'running' ELSE j.state END
           AS state,
       j.received, j.inserted, j.updated, j.reassigned, j.rejected, j.error,
       j.submitted_at, j.completed_at, j.callback_url, j.callback_state, j.callback_attempts,
       coalesce(q.attempts, 0) AS attempts
"""
SELECT_JOB: Final = f"""
{_COLUMNS}, j.rejected_rows
FROM jobs j LEFT JOIN job_queue q USING (job_id)
WHERE j.job_id = $1 AND j.account_id = $2
"""
# Newest first; every filter is optional (NULL matches all). jobs_account_idx serves the order.
SELECT_JOBS: Final = f"""
{_COLUMNS}
FROM jobs j LEFT JOIN job_queue q USING (job_id)
WHERE j.account_id = $1 AND j.job_id < $2
  AND ($3::text IS NULL OR j.dialect = $3)
  AND ($4::bigint IS NULL OR j.campaign_id = $4)
  AND ($5::text IS NULL
       OR (CASE WHEN j.state = 'queued' AND q.state = 'running' THEN 'running'
                ELSE j.state END) = $5)
  AND ($6::timestamptz IS NULL OR j.submitted_at >= $6)
  AND ($7::timestamptz IS NULL OR j.submitted_at < $7)
  AND ($9::text IS NULL OR j.upload_ref = $9)
ORDER BY j.job_id DESC
LIMIT $8
"""
SELECT_REJECTED: Final = """
SELECT rejected_rows, rejected_columns FROM jobs WHERE job_id = $1 AND account_id = $2
"""
SELECT_REJECTED_COLUMNS: Final = """
SELECT rejected_columns FROM jobs WHERE job_id = $1 AND account_id = $2
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


class JobSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A job in a list: everything but its rejected rows (up to one per row uploaded)."""

    job_id: int
    kind: str
    dialect: str
    campaign_id: int | None
    upload_ref: str | None
    state: str  # queued | running | done | failed
    attempts: int
    counts: JobCounts
    error: str | None
    timings: JobTimings
    callback: CallbackView | None


class JobView(JobSummary, frozen=True, kw_only=True):
    """A job as the API shows it: state, counts, rejected rows, timings, callback attempts."""

    rejected_rows: list[RejectedRow]


class JobPage(msgspec.Struct, frozen=True, kw_only=True):
    jobs: list[JobSummary]
    next_before: int | None  # the last job_id of this page when there may be another page


class JobsQuery(msgspec.Struct, frozen=True, kw_only=True):
    dialect: str | None = None
    campaign: str | None = None  # a campaign name of the account
    state: str | None = None
    from_: datetime | None = None  # submitted at or after
    to: datetime | None = None  # submitted before
    before: int | None = None  # a job_id: only older jobs
    upload_ref: str | None = None  # the uploader's reference (Ozonetel's transactionId)
    limit: int = 100


async def get_job(conn: Connection, account_id: int, job_id: int) -> JobView | None:
    """The account's job, or None (a job of another account is a missing one)."""
    row = await conn.fetchrow(SELECT_JOB, job_id, account_id)
    if row is None:
        return None
    rejected_rows = msgspec.json.decode(row["rejected_rows"], type=list[RejectedRow])
    return JobView(**msgspec.structs.asdict(_summary(row)), rejected_rows=rejected_rows)


async def rejected_rows(
    conn: Connection, account_id: int, job_id: int
) -> tuple[list[RejectedRow], list[str]] | None:
    """The account's job's refused rows (empty until it is done) and the names of their cells
    in the upload's order, or None without such a job."""
    found = await conn.fetchrow(SELECT_REJECTED, job_id, account_id)
    if found is None:
        return None
    rows = msgspec.json.decode(found["rejected_rows"], type=list[RejectedRow])
    return rows, msgspec.json.decode(found["rejected_columns"], type=list[str])


async def rejected_columns(conn: Connection, account_id: int, job_id: int) -> list[str]:
    """The names of the account's job's refused rows' cells in the upload's order (none
    without such a job, or for a job completed before they were recorded)."""
    found = await conn.fetchval(SELECT_REJECTED_COLUMNS, job_id, account_id)
    return [] if found is None else msgspec.json.decode(found, type=list[str])


async def list_jobs(conn: Connection, account_id: int, query: JobsQuery) -> JobPage:
    """The account's jobs, newest first, filtered; keyset paging by job_id (`before`).

    Raises UnknownCampaignError when `campaign` names no campaign of this account.
    """
    campaign_id = await campaign_named(conn, account_id, query.campaign)
    rows = await conn.fetch(
        SELECT_JOBS,
        account_id,
        query.before if query.before is not None else BIGINT_MAX,
        query.dialect,
        campaign_id,
        query.state,
        query.from_,
        query.to,
        query.limit,
        query.upload_ref,
    )
    jobs = [_summary(row) for row in rows]
    return JobPage(jobs=jobs, next_before=jobs[-1].job_id if len(jobs) == query.limit else None)


def _summary(row: asyncpg.Record) -> JobSummary:
    callback = None
    if row["callback_url"]:
        callback = CallbackView(
            url=row["callback_url"],
            state=row["callback_state"] or "pending",
            attempts=msgspec.json.decode(row["callback_attempts"], type=list[CallbackAttemptView]),
        )
    return JobSummary(
        job_id=row["job_id"],
        kind=row["kind"],
        dialect=row["dialect"],
        campaign_id=row["campaign_id"],
        upload_ref=row["upload_ref"],
        state=row["state"],
        attempts=row["attempts"],
        counts=JobCounts(
            received=row["received"],
            inserted=row["inserted"],
            updated=row["updated"],
            reassigned=row["reassigned"],
            rejected=row["rejected"],
        ),
        error=row["error"],
        timings=JobTimings(submitted_at=row["submitted_at"], completed_at=row["completed_at"]),
        callback=callback,
    )
