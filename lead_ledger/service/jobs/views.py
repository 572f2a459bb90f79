"""Bulk jobs as the API shows them: state, counts, rejected rows, timings, callback attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.job_events import RejectedRow

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
