"""Ozonetel CloudAgent bulk file upload (seed 001): check, validate, submit as a job, run it.

The vendor validates a file while it is uploaded and answers at once; the data is then added in
the background and the result is POSTed to the caller's callBackUrl. Here: the request's checks
run in a fixed order (docs/ozonetel.md, "Bulk file upload"), the file is parsed and validated
by `ozonetel_file.parse_upload`, and an accepted file becomes a job of kind `ozonetel_upload`
whose payload is the parsed rows, so the worker never parses it again. The job inserts the rows
(no duplicate check: the vendor's file upload has none) and, for `action=start`, starts the
campaign, in one transaction; its callback carries the vendor's body.
"""

from __future__ import annotations

import enum
from typing import Any, Final, Literal

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.credentials import key_digest
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import RateLimits
from lead_ledger.ledger.job_events import RejectedRow
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.service import jobs, rate_limits
from lead_ledger.service.accounts import lock_account
from lead_ledger.service.file_parser import FileParser, Parsed, ParseRequest
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.ozonetel import DND_NUMBER, set_campaign_state
from lead_ledger.service.ozonetel_file import UploadPayload, UploadRefusal, sniff_format
from lead_ledger.service.ozonetel_values import key_matches, lookup, names_account, stored
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, Origin

KIND: Final = "ozonetel_upload"
BUCKET: Final = "ozonetel_bulk"
DIALECT: Final = "ozonetel"

# Everything the checks need, in one round trip. Only outbound campaigns can take data, so an
# inbound one is "not found" like a missing one; the agents (skills) are read only for an
# agentwise (skillwise) campaign, the only case where the file's values are checked.
SELECT_UPLOAD_CONTEXT: Final = """
SELECT c.account_id, c.credential_id, c.key_sha256, a.name AS account_name, s.rate_limits,
       k.campaign_id, k.name AS campaign_name, k.assignment, k.state,
       CASE WHEN k.assignment = 'agentwise' THEN
           ARRAY(SELECT g.agent_id FROM agents g WHERE g.account_id = c.account_id) END AS agents,
       CASE WHEN k.assignment = 'skillwise' THEN
           ARRAY(SELECT l.name FROM skills l WHERE l.account_id = c.account_id) END AS skills,
       EXISTS (SELECT 1 FROM job_queue q
               WHERE q.campaign_id = k.campaign_id AND q.kind = $3
                 AND q.state IN ('queued', 'running')) AS processing
FROM credentials c
JOIN accounts a ON a.account_id = c.account_id
JOIN settings s ON s.account_id = c.account_id
LEFT JOIN campaigns k ON k.account_id = c.account_id AND k.name = $2 AND k.direction = 'outbound'
WHERE c.key_sha256 = $1 AND c.dialect = 'ozonetel' AND NOT c.revoked
"""
# Read again under the campaign and account locks: what the first read saw may have changed.
SELECT_CAMPAIGN: Final = "SELECT state FROM campaigns WHERE campaign_id = $1"
SELECT_PROCESSING: Final = """
SELECT EXISTS (SELECT 1 FROM job_queue
               WHERE campaign_id = $1 AND kind = $2 AND state IN ('queued', 'running'))
"""

Action = Literal["start", "stop"]


class Refusal(enum.Enum):
    """The upload's checks, in the vendor's order (docs/ozonetel.md, "Bulk file upload"); the
    file's own validation refuses with an `UploadRefusal` that carries the vendor's text."""

    AUTHENTICATION_FAILED = enum.auto()
    FILE_MISSING = enum.auto()
    NOT_EXCEL = enum.auto()  # neither xlsx nor csv, by content
    CAMPAIGN_NOT_FOUND = enum.auto()
    CAMPAIGN_RUNNING = enum.auto()
    RATE_LIMITED = enum.auto()


class InProgress(msgspec.Struct, frozen=True):
    """The campaign has an upload queued or running: one at a time."""

    campaign: str


class Submitted(msgspec.Struct, frozen=True):
    """The file was accepted; its rows are added by the job, whose result goes to the callback."""

    job_id: int


Outcome = Refusal | UploadRefusal | InProgress | Submitted


class UploadForm(msgspec.Struct, frozen=True, kw_only=True):
    """The multipart fields as sent (None when a field is missing); `file` is the file's bytes."""

    username: str | None = None
    api_key: str | None = None
    campaign_name: str | None = None
    callback_url: str | None = None
    action: str | None = None
    file: bytes | None = None
    filename: str | None = None


class _Checked(msgspec.Struct, frozen=True, kw_only=True):
    """A request that passed the checks before the file's own validation."""

    row: asyncpg.Record
    file: bytes
    action: Action | None


def _text(value: str | None) -> str | None:
    """The field, or None when it is missing or blank."""
    return value if value is not None and value.strip() else None


def parse_action(value: str | None) -> Action | None:
    """`start` or `stop` in any case (surrounding spaces ignored); anything else: a plain upload."""
    verb = (value or "").strip().lower()
    return verb if verb in ("start", "stop") else None  # type: ignore[return-value]


async def upload(
    pool: asyncpg.Pool, parser: FileParser, form: UploadForm, origin: Origin
) -> Outcome:
    """Run the checks in order, validate the file, take the rate limit, submit the job."""
    async with pool.acquire() as conn:
        checked = await _check(conn, form)
    if not isinstance(checked, _Checked):
        return checked
    row = checked.row
    # Parsing 50,000 rows takes a few hundred milliseconds of CPU: in the parser's worker
    # process, so other requests keep being served meanwhile and a reader that fails takes
    # only the worker with it; with no pooled connection held.
    parsed = await parser.parse(
        ParseRequest(
            data=checked.file,
            campaign_name=row["campaign_name"],
            assignment=row["assignment"],
            agent_ids=list(row["agents"] or ()),
            skills=list(row["skills"] or ()),
        )
    )
    if isinstance(parsed, UploadRefusal):
        return parsed
    actor = Actor(dialect=DIALECT, account_id=row["account_id"], credential_id=row["credential_id"])
    ctx = origin.context(actor)
    limits = msgspec.json.decode(row["rate_limits"], type=RateLimits)
    async with pool.acquire() as conn:
        # Taken last, so that a refused request does not use up the account's upload of the
        # minute; outside the transaction, as rate_limits.take requires.
        if not await rate_limits.take(
            conn, row["account_id"], BUCKET, limits.ozonetel_bulk_per_minute
        ):
            return Refusal.RATE_LIMITED
        return await _submit(conn, ctx, form, checked, parsed)


async def _check(  # noqa: PLR0911 - one return per vendor answer, in their order
    conn: Connection, form: UploadForm
) -> _Checked | Refusal | InProgress:
    """Authentication, file present, format by content, campaign, state, upload in progress."""
    username, api_key = _text(form.username), _text(form.api_key)
    if username is None or api_key is None:
        return Refusal.AUTHENTICATION_FAILED
    digest = key_digest(api_key)
    campaign = lookup(_text(form.campaign_name))
    row = await conn.fetchrow(SELECT_UPLOAD_CONTEXT, digest, campaign, KIND)
    if not key_matches(row, digest) or not names_account(username, row):
        return Refusal.AUTHENTICATION_FAILED
    if not form.file:
        return Refusal.FILE_MISSING
    if sniff_format(form.file) is None:
        return Refusal.NOT_EXCEL
    if row["campaign_id"] is None:
        return Refusal.CAMPAIGN_NOT_FOUND
    action = parse_action(form.action)
    if row["state"] == "running" and action != "stop":
        return Refusal.CAMPAIGN_RUNNING
    if row["processing"]:
        return InProgress(row["campaign_name"])
    return _Checked(row=row, file=form.file, action=action)


async def _submit(
    conn: Connection, ctx: Context, form: UploadForm, checked: _Checked, parsed: Parsed
) -> Refusal | InProgress | Submitted:
    """Under the campaign and account locks: check again, stop if asked, store the job."""
    row = checked.row
    account_id: int = row["account_id"]
    campaign_id: int = row["campaign_id"]
    async with write_transaction(conn):
        # Every lock before the first write (docs/decisions.md). The campaign lock serialises
        # uploads to the campaign, so of two at once the second sees the first's queued job;
        # the account lock is what campaign starts and stops are written under, so the state
        # read here stays true until commit.
        await lock_campaigns(conn, [campaign_id])
        await lock_account(conn, account_id)
        state = await conn.fetchval(SELECT_CAMPAIGN, campaign_id)
        if state == "running" and checked.action != "stop":
            return Refusal.CAMPAIGN_RUNNING
        if await conn.fetchval(SELECT_PROCESSING, campaign_id, KIND):
            return InProgress(row["campaign_name"])
        if checked.action == "stop":
            await set_campaign_state(conn, ctx, account_id, campaign_id, "stopped")
        job_id = await jobs.submit_job(
            conn,
            ctx,
            account_id=account_id,
            dialect=DIALECT,
            kind=KIND,
            campaign_id=campaign_id,
            payload=parsed.payload,
            received=parsed.received,
            callback_url=stored(_text(form.callback_url)),
            upload_ref=stored(form.filename),
            # What the callback names (the campaign and the username as sent) and what the job
            # does after the insert; kept on JobSubmitted, where a failure's callback finds them.
            options={
                "campaign": row["campaign_name"],
                "username": form.username,
                "action": checked.action,
            },
        )
    return Submitted(job_id)


# --- the job ------------------------------------------------------------------------------------


def _callback(job: jobs.Job, status: str, message: str) -> dict[str, Any]:
    return {
        "status": status,
        "message": message,
        "campaign": job.options.get("campaign"),
        "username": job.options.get("username"),
    }


def starts_campaign(job: jobs.Job) -> bool:
    """An `action=start` job starts its campaign, under the account's lock: the run takes it
    (JobKind.locks_account)."""
    return job.options.get("action") == "start"


def failure_body(job: jobs.Job, error: str) -> dict[str, Any]:  # noqa: ARG001 - no reason in it
    """The vendor's callback for an upload that could not be completed."""
    return _callback(job, "error", "Data upload failed")


async def run_upload(
    conn: Connection,
    ctx: Context,
    job: jobs.Job,
    payload: bytes,
    *,
    key_workers: KeyWorkers | None = None,
) -> jobs.JobOutcome:
    """Insert every row (no duplicate check) and, for `action=start`, start the campaign."""
    upload_payload = msgspec.json.decode(payload, type=UploadPayload)
    campaign_id = job.required_campaign()
    # With action=start the run took the account's lock with the campaign's, before its first
    # write and its transaction id (`starts_campaign`; docs/decisions.md, "Locks before the
    # first write").
    start = starts_campaign(job)
    result = await insert_leads(
        conn,
        ctx,
        account_id=job.account_id,
        campaign_id=campaign_id,
        rows=upload_payload.rows,
        check_duplicates=False,
        key_workers=key_workers,
    )
    if start:
        await set_campaign_state(conn, ctx, job.account_id, campaign_id, "running")
    # A number on the do-not-call list is no file error (the vendor documents none): its row
    # is refused in the job, the rest is loaded, and the callback reports success.
    rejected = [
        RejectedRow(
            row_number=index + 1,
            row={"phone_numbers": ", ".join(upload_payload.rows[index].phone_numbers)},
            description=DND_NUMBER,
            dnc_entry_id=block.entry_id,
            dnc_scope=block.scope,
        )
        for index, block in sorted(result.blocked.items())
    ]
    return jobs.JobOutcome(
        inserted=len(result.inserted),
        rejected_rows=rejected,
        callback_body=_callback(job, "success", "Data uploaded successfully"),
    )
