"""Flexydial: tokens, bulk_data submission and job status (seed 000, VENDOR-APIS A).

`generate_token` logs a user in and answers the user's one `flexydial` credential key, the token.
`submit_bulk` checks a request (its structure already checked on the wire with
service/flexydial_payload.py) against its campaign and queues the rows as a job
(service/flexydial_jobs.py does the rows). `job_status` maps a job onto Flexydial's status
answers. docs/flexydial.md lists every message and decision.
"""

from __future__ import annotations

import uuid
from typing import Final

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.job_events import CellValue
from lead_ledger.service import jobs, login_throttle
from lead_ledger.service.account_reads import SELECT_CAMPAIGN, authenticate_user, find_account
from lead_ledger.service.accounts import issue_login_token
from lead_ledger.service.flexydial_jobs import INSERT_KIND, UPDATE_KIND
from lead_ledger.service.flexydial_payload import BulkRequest, check_headers
from lead_ledger.service.inputs import NUL, decimal
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, Origin

DIALECT: Final = "flexydial"
# No vendor text exists for a campaign name the account does not have; worded like "Job not found."
CAMPAIGN_NOT_FOUND: Final = "Campaign not found."
JOB_NOT_FOUND: Final = "Job not found."
COMPLETED: Final = "Completed"
PENDING: Final = "Pending state. Please check with Administrator!"
INVALID_DATA: Final = "Invalid Data"


class Submitted(msgspec.Struct, frozen=True):
    """The rows were queued as a job; `upload_ref` names the upload (the vendor's phonebook)."""

    upload_ref: str
    job_id: int


class Refused(msgspec.Struct, frozen=True):
    """The request is refused as a whole, with the vendor's text (or CAMPAIGN_NOT_FOUND)."""

    message: str


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """`improper_data` only with "Invalid Data": each refused row as sent, plus "description"."""

    status: str
    improper_data: list[dict[str, CellValue]] | UnsetType = UNSET


# --- generate-token ---------------------------------------------------------------------------


async def generate_token(
    pool: asyncpg.Pool,
    username: str,
    password: str,
    origin: Origin,
    limits: login_throttle.Limits,
    shared: login_throttle.SharedChecks,
) -> str | login_throttle.Throttled | None:
    """The user's token: the key of its flexydial credential, issued by its first login
    (service/accounts.py, issue_login_token); None when the username and password do not
    match (or cannot be stored: PostgreSQL text holds no NUL); Throttled, without checking
    the password, when the username or the client address has failed too often of late.
    Logins with the same username and password at once share one check (`shared`)."""

    async def check() -> str | login_throttle.Throttled | None:
        async with pool.acquire() as conn:
            return await _log_in(conn, username, password, origin, limits)

    return await shared.run(DIALECT, username, password, origin.client_address, check)


async def _log_in(
    conn: Connection,
    username: str,
    password: str,
    origin: Origin,
    limits: login_throttle.Limits,
) -> str | login_throttle.Throttled | None:
    attempt = await login_throttle.admit(
        conn, limits, username=username, address=origin.client_address
    )
    if isinstance(attempt, login_throttle.Throttled):
        return attempt
    if NUL in username or NUL in password:
        return None
    user = await authenticate_user(conn, username, password)
    if user is None:
        return None
    account = await find_account(conn, user.account)
    if account is None:
        return None  # the account of a user is never removed; a vanished one logs nobody in
    await login_throttle.give_back(conn, attempt)
    ctx = origin.context(Actor(dialect=DIALECT, account_id=account.id, username=user.username))
    return await issue_login_token(conn, ctx, account.id, user.username, DIALECT)


# --- bulk upload --------------------------------------------------------------------------------


async def submit_bulk(
    pool: asyncpg.Pool, ctx: Context, account_id: int, request: BulkRequest
) -> Submitted | Refused:
    """Check the request against its campaign (found, headers), then queue its rows as a job.
    Its structure was checked on the wire (flexydial_payload.parse_structure)."""
    async with pool.acquire() as conn:
        campaign = None
        if NUL not in request.campaign:
            campaign = await conn.fetchrow(SELECT_CAMPAIGN, account_id, request.campaign)
        if campaign is None:
            return Refused(CAMPAIGN_NOT_FOUND)
        mismatch = check_headers(request.rows, campaign["crm_fields"])
        if mismatch is not None:
            return Refused(mismatch)
        # Unique per upload and stable: it is the job's upload_ref, recorded in JobSubmitted.
        upload_ref = f"flexydial_{uuid.uuid4().hex}"
        async with write_transaction(conn):
            job_id = await jobs.submit_job(
                conn,
                ctx,
                account_id=account_id,
                dialect=DIALECT,
                kind=INSERT_KIND if request.kind == "insert" else UPDATE_KIND,
                campaign_id=campaign["campaign_id"],
                payload=msgspec.json.encode(request),
                received=len(request.rows),
                upload_ref=upload_ref,
            )
    return Submitted(upload_ref=upload_ref, job_id=job_id)


# --- status -------------------------------------------------------------------------------------


async def job_status(conn: Connection, account_id: int, job_id: str) -> Status | None:
    """The status of the account's Flexydial job; None when there is no such job.

    A failed job answers "Pending state. Please check with Administrator!": it did not complete,
    and checking with the administrator (who sees the error in the job's log) is what helps.
    """
    number = decimal(job_id, minimum=1)  # int() alone fails past 4,300 digits
    if number is None:
        return None
    job = await jobs.get_job(conn, account_id, number)
    if job is None or job.dialect != DIALECT:
        return None
    if job.state != "done":
        return Status(status=PENDING)
    if not job.rejected_rows:
        return Status(status=COMPLETED)
    # Each row's keys in the upload's order (the stored rows keep jsonb's), then description.
    columns = await jobs.rejected_columns(conn, account_id, number)
    improper = [
        {
            **{name: row[name] for name in columns if name in row},
            **row,
            "description": rejected.description,
        }
        for rejected in job.rejected_rows
        for row in [rejected.row or {}]
    ]
    return Status(status=INVALID_DATA, improper_data=improper)
