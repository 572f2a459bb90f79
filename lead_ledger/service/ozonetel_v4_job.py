"""Ozonetel bulk V4's job: check each row, insert the good ones, report to the callback.

A row is checked as AddCampaignData checks one number (`ozonetel.lead_fields`: phone,
priority, expiry, agent, skill, with the vendor's texts), then the do-not-call list, then the
duplicate rule the request asked for: none, live leads of the campaign and earlier rows
(checkDuplicate), or any lead of the campaign, archived included (isDelete). Refused rows are
the job's rejected rows; the callback's failedFilePath links them as csv
(`GET /v1/jobs/{id}/rejected.csv`). The job runs in one transaction under the campaign's lock
(service/jobs/lifecycle.py), so its checks are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import ExtraValue, LeadFields
from lead_ledger.ledger.job_events import CellValue, RejectedRow
from lead_ledger.service import jobs
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.ozonetel import (
    ROW_MESSAGES,
    AddCampaignData,
    Refusal,
    lead_fields,
    office_timezone,
    set_campaign_state,
)
from lead_ledger.service.ozonetel_bulk import starts_campaign
from lead_ledger.service.ozonetel_file import MAX_NAME_LENGTH
from lead_ledger.service.ozonetel_v4 import (
    ROLES,
    BulkPayload,
    Role,
    column_roles,
    wall_clock,
)
from lead_ledger.service.ozonetel_values import lookup, stored
from lead_ledger.service.writer import Context

NOT_AN_ARRAY: Final = "Row should be an array of values"
NAME_TOO_LONG: Final = f"Name should not exceed {MAX_NAME_LENGTH} characters"
DUPLICATE_IN_PAYLOAD: Final = "Duplicate number in payload"
DUPLICATE_IN_CAMPAIGN: Final = "Number already exists in campaign"
SUCCESS_MESSAGE: Final = "File Successfully uploaded."
FAILURE_MESSAGE: Final = "File upload failed"

# The campaign's assignment and the account's office hours, and which of the rows' agents and
# skills exist in the account: one round trip.
SELECT_ROW_CONTEXT: Final = """
SELECT k.assignment, s.office_hours,
       ARRAY(SELECT g.agent_id FROM agents g
             WHERE g.account_id = k.account_id AND g.agent_id = ANY($2::text[])) AS agents,
       ARRAY(SELECT l.name FROM skills l
             WHERE l.account_id = k.account_id AND l.name = ANY($3::text[])) AS skills
FROM campaigns k JOIN settings s ON s.account_id = k.account_id
WHERE k.campaign_id = $1
"""

_decode_payload: Final = msgspec.json.Decoder(BulkPayload).decode


class _Columns(msgspec.Struct, frozen=True):
    roles: dict[Role, int]
    extra: list[tuple[int, str]]  # other named columns: a lead field each, by the map's name
    titles: list[str]  # every column's name in a refused row (unnamed ones by position)


def _columns(given_names: Sequence[str]) -> _Columns:
    # Names become lead field names and jsonb keys, which cannot hold NUL: it is dropped.
    names = [stored(name) or "" for name in given_names]
    extra: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, raw in enumerate(names):
        title = raw.strip()
        if not title or ROLES.get(title.lower().replace("_", "").replace(" ", "")):
            continue
        if title not in seen:  # the first of repeated columns wins
            seen.add(title)
            extra.append((index, title))
    titles = [name.strip() or f"column {i + 1}" for i, name in enumerate(names)]
    return _Columns(roles=column_roles(names), extra=extra, titles=titles)


def _cell(row: Sequence[str], index: int | None) -> str | None:
    """The cell's text stripped, or None when the column is missing or the cell blank."""
    if index is None or index >= len(row):
        return None
    text = row[index].strip()
    return text or None


def _raw_row(columns: _Columns, row: list[str] | str) -> dict[str, CellValue]:
    """A refused row as the failed-rows file shows it: its cells under the map's names."""
    if isinstance(row, str):
        return {"row": stored(row) or ""}
    shown: dict[str, CellValue] = {}
    for index, value in enumerate(row):
        title = columns.titles[index] if index < len(columns.titles) else f"column {index + 1}"
        shown.setdefault(title, stored(value) or "")
    return shown


class _Rules(msgspec.Struct, frozen=True, kw_only=True):
    assignment: str
    timezone: str | None
    agents: frozenset[str]
    skills: frozenset[str]


async def _rules(
    conn: Connection, campaign_id: int, columns: _Columns, rows: Sequence[list[str] | str]
) -> _Rules:
    agent_at, skill_at = columns.roles.get("agent"), columns.roles.get("skill")
    cells = [row for row in rows if isinstance(row, list)]
    # A value holding NUL names no agent or skill (PostgreSQL text cannot hold it): not looked up.
    agents = sorted({a for r in cells if (a := lookup(_cell(r, agent_at))) is not None})
    skills = sorted({s for r in cells if (s := lookup(_cell(r, skill_at))) is not None})
    found = await conn.fetchrow(SELECT_ROW_CONTEXT, campaign_id, agents, skills)
    if found is None:
        raise ValueError(f"campaign {campaign_id} does not exist")
    return _Rules(
        assignment=found["assignment"],
        timezone=office_timezone(found["office_hours"]),
        agents=frozenset(found["agents"]),
        skills=frozenset(found["skills"]),
    )


def _row_fields(
    columns: _Columns, row: list[str], rules: _Rules, now: datetime
) -> LeadFields | str:
    """The row's lead, or the reason it is refused (AddCampaignData's checks and texts)."""
    roles = columns.roles
    body = AddCampaignData(
        phoneNumber=_cell(row, roles["phone"]),
        Name=_cell(row, roles.get("name")),
        priority=_cell(row, roles.get("priority")),
        expiryDate=_cell(row, roles.get("expiry")),
        agentId=_cell(row, roles.get("agent")),
        skill=_cell(row, roles.get("skill")),
    )
    fields = lead_fields(
        body,
        now,
        timezone=rules.timezone,
        assignment=rules.assignment,
        agent_known=body.agentId in rules.agents,
        skill_known=body.skill in rules.skills,
    )
    if isinstance(fields, Refusal):
        return ROW_MESSAGES[fields]
    if fields.name is not None and len(fields.name) > MAX_NAME_LENGTH:
        return NAME_TOO_LONG
    extra: dict[str, ExtraValue] = {}
    for index, title in columns.extra:
        value = stored(_cell(row, index))
        if value is not None:
            extra[title] = value
    return msgspec.structs.replace(fields, extra=extra) if extra else fields


def _callback(
    job: jobs.Job, counts: tuple[int, int, int], failed: str, status: str
) -> dict[str, Any]:
    """The vendor's callback body: counts as strings, as the vendor sends them."""
    total, processed, refused = counts
    zone = job.options.get("timezone")
    return {
        "data": {
            "totalNoUploaded": str(total),
            "numbersProcessed": str(processed),
            "numbersNotProcessed": str(refused),
            "failedFilePath": failed,
            "transactionId": job.options.get("transaction_id"),
            "status": status,
            "message": SUCCESS_MESSAGE if status == "Success" else FAILURE_MESSAGE,
            "startDateTime": job.options.get("started"),
            "endDateTime": wall_clock(datetime.now(UTC), zone if isinstance(zone, str) else None),
        }
    }


def failure_body(job: jobs.Job, error: str) -> dict[str, Any]:  # noqa: ARG001 - no reason in it
    """The callback of a job that could not be completed: nothing was added."""
    return _callback(job, (job.received, 0, job.received), "", "Failure")


def failed_file_path(job: jobs.Job) -> str:
    """Where the refused rows are, as csv (a native key reads it)."""
    return f"{job.options.get('links_base') or ''}/v1/jobs/{job.job_id}/rejected.csv"


async def run_bulk_v4(
    conn: Connection,
    ctx: Context,
    job: jobs.Job,
    payload: bytes,
    *,
    key_workers: KeyWorkers | None = None,
) -> jobs.JobOutcome:
    """Check every row, insert the good ones, and for `action=start` start the campaign."""
    bulk = _decode_payload(payload)
    campaign_id = job.required_campaign()
    # With action=start the run holds the account's lock too, taken with the campaign's before
    # its transaction id (`starts_campaign`; docs/decisions.md, "Locks before the first write").
    start = starts_campaign(job)
    columns = _columns(bulk.columns)
    rules = await _rules(conn, campaign_id, columns, bulk.rows)
    now = datetime.now(UTC)
    problems: dict[int, str] = {}
    valid: list[tuple[int, LeadFields]] = []
    for number, row in enumerate(bulk.rows, start=1):
        fields = _row_fields(columns, row, rules, now) if isinstance(row, list) else NOT_AN_ARRAY
        if isinstance(fields, str):
            problems[number] = fields
        else:
            valid.append((number, fields))
    mode = job.options.get("duplicates")
    result = await insert_leads(
        conn,
        ctx,
        account_id=job.account_id,
        campaign_id=campaign_id,
        rows=[fields for _, fields in valid],
        check_duplicates=mode in ("live", "any"),
        check_archived=mode == "any",
        key_workers=key_workers,
    )
    # A duplicate names leads of the campaign when there are any, else the leads this job
    # inserted from earlier rows: those ids are new, so they tell the two apart.
    new_ids = set(result.inserted.values())
    for index, owners in result.duplicates.items():
        in_payload = all(owner in new_ids for owner in owners)
        problems[valid[index][0]] = DUPLICATE_IN_PAYLOAD if in_payload else DUPLICATE_IN_CAMPAIGN
    blocks = {valid[index][0]: block for index, block in result.blocked.items()}
    duplicates = {valid[index][0]: owners for index, owners in result.duplicates.items()}
    for number in blocks:
        problems[number] = ROW_MESSAGES[Refusal.DND_NUMBER]
    if start:
        await set_campaign_state(conn, ctx, job.account_id, campaign_id, "running")
    rejected = [
        RejectedRow(
            row_number=number,
            row=_raw_row(columns, bulk.rows[number - 1]),
            description=problems[number],
            dnc_entry_id=blocks[number].entry_id if number in blocks else None,
            dnc_scope=blocks[number].scope if number in blocks else None,
            existing_lead_ids=duplicates.get(number, []),
        )
        for number in sorted(problems)
    ]
    counts = (len(bulk.rows), len(result.inserted), len(rejected))
    failed = failed_file_path(job) if rejected else ""
    return jobs.JobOutcome(
        inserted=len(result.inserted),
        rejected_rows=rejected,
        callback_body=_callback(job, counts, failed, "Success"),
    )
