"""Flexydial bulk jobs: the row-level checks and writes of an accepted bulk_data upload.

The request was checked as a whole when it was submitted (service/flexydial.py); its rows are
the job's payload, the `BulkRequest` as msgspec JSON. Each kind runs in the job's single
transaction (service/jobs/lifecycle.py) and reports every refused row with Flexydial's description,
which the status route shows as "improper_data". Both kinds are set-based: one query for the
agents, one for the reference matches, one read of the lead streams, one append.

Both kinds are registered where the app is composed (service/job_kinds.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadEvent, LeadFields, LeadReassigned, LeadUpdated
from lead_ledger.ledger.job_events import RejectedRow
from lead_ledger.ledger.lead import LeadState, decide_update
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key
from lead_ledger.service import dnc
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.flexydial_payload import (
    DUPLICATE_CHECK,
    NUMBER,
    USER,
    BulkRequest,
    RowPatch,
    RowProblem,
    describe,
    merge_patches,
    not_found,
    row_to_fields,
    row_to_patch,
)
from lead_ledger.service.jobs import Job, JobOutcome
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.leads import lead_append, load_leads
from lead_ledger.service.writer import Context, PendingAppend, record

INSERT_KIND: Final = "flexydial_insert"
UPDATE_KIND: Final = "flexydial_update"

UNKNOWN_USER: Final = "This user is not present in our database"
# A number on the do-not-call list, by the scope of the entry (Flexydial's DNC matches by the
# last ten digits; here it is the dedupe key, every spelling of the number alike).
BLOCKED_GLOBALLY: Final = "This number is blocked globally"
BLOCKED_IN_CAMPAIGN: Final = "This number is blocked in this campaign"
# Not one of the checks' object: Flexydial writes this text alone (a row it set aside before
# checking any).
DUPLICATE_IN_FILE: Final = "This row is duplicated in file"

SELECT_KNOWN_AGENTS: Final = """
SELECT agent_id FROM agents WHERE account_id = $1 AND agent_id = ANY($2::text[])
"""
# Every live lead of the campaign holding one of the values (contacts holds live leads only).
SELECT_MATCHES: Final = """
SELECT value, lead_id FROM contacts
WHERE campaign_id = $1 AND kind = $2 AND value = ANY($3::text[])
ORDER BY lead_id
"""

_decode_request: Final = msgspec.json.Decoder(BulkRequest).decode


def already_exists(campaign: str) -> str:
    """Flexydial's description of a row whose number a live lead of the campaign has."""
    text = f"contact with this numeric value is already exist in {campaign} campaign"
    return describe({DUPLICATE_CHECK: text})


async def _known_agents(conn: Connection, account_id: int, agents: Iterable[str]) -> set[str]:
    wanted = sorted(set(agents))
    if not wanted:
        return set()
    return {row["agent_id"] for row in await conn.fetch(SELECT_KNOWN_AGENTS, account_id, wanted)}


def _blocked_text(block: DncBlock) -> str:
    text = BLOCKED_GLOBALLY if block.campaign_id is None else BLOCKED_IN_CAMPAIGN
    return describe({NUMBER: text})


def _user(row: Mapping[str, str]) -> str | None:
    return row.get("user", "").strip() or None


def _with_user(problems: dict[str, str], user: str | None, known: set[str]) -> dict[str, str]:
    """The row's problems with Flexydial's last check, an unknown `user`, added."""
    if user is not None and user not in known:
        return problems | {USER: UNKNOWN_USER}
    return problems


def _rejected(
    rows: list[dict[str, str]],
    problems: Mapping[int, str],
    blocks: Mapping[int, DncBlock] | None = None,
    duplicates: Mapping[int, list[int]] | None = None,
) -> list[RejectedRow]:
    """The refused rows as sent (1-based numbers), in upload order; a row the do-not-call
    registry refused names the entry, a duplicate the leads it duplicates."""
    rejected = []
    for n in sorted(problems):
        block = (blocks or {}).get(n)
        rejected.append(
            RejectedRow(
                row_number=n,
                row=dict(rows[n - 1]),
                description=problems[n],
                dnc_entry_id=None if block is None else block.entry_id,
                dnc_scope=None if block is None else block.scope,
                existing_lead_ids=(duplicates or {}).get(n, []),
            )
        )
    return rejected


# --- insert -------------------------------------------------------------------------------------


async def insert_job(
    conn: Connection,
    ctx: Context,
    job: Job,
    payload: bytes,
    *,
    key_workers: KeyWorkers | None = None,
) -> JobOutcome:
    """Insert the valid rows in one call; the others are refused with Flexydial's description.

    A row's own checks (`row_to_fields`) and its `user` are all reported together; a row that
    passes them is then checked against the do-not-call registry and for duplicates (a live
    lead of the campaign, or an earlier row of this upload).
    """
    request = _decode_request(payload)
    problems: dict[int, str] = {}
    parsed = [row_to_fields(row) for row in request.rows]
    known = await _known_agents(conn, job.account_id, filter(None, map(_user, request.rows)))
    valid: list[tuple[int, LeadFields]] = []
    for number, (row, fields) in enumerate(zip(request.rows, parsed, strict=True), start=1):
        found = fields.problems if isinstance(fields, RowProblem) else {}
        found = _with_user(found, _user(row), known)
        if found:
            problems[number] = describe(found)
        elif isinstance(fields, LeadFields):
            valid.append((number, fields))
    result = await insert_leads(
        conn,
        ctx,
        account_id=job.account_id,
        campaign_id=job.required_campaign(),
        rows=[fields for _, fields in valid],
        check_duplicates=True,
        key_workers=key_workers,
    )
    # A duplicate names live leads of the campaign when there are any, else the leads this
    # upload inserted from earlier rows: those ids are new, so they tell the two apart.
    new_ids = set(result.inserted.values())
    exists = already_exists(request.campaign)
    for index, owners in result.duplicates.items():
        in_file = all(owner in new_ids for owner in owners)
        problems[valid[index][0]] = DUPLICATE_IN_FILE if in_file else exists
    blocks = {valid[index][0]: block for index, block in result.blocked.items()}
    for number, block in blocks.items():
        problems[number] = _blocked_text(block)
    duplicates = {valid[index][0]: owners for index, owners in result.duplicates.items()}
    return JobOutcome(
        inserted=len(result.inserted),
        rejected_rows=_rejected(request.rows, problems, blocks, duplicates),
    )


# --- update and reassignment --------------------------------------------------------------------


class _Found(msgspec.Struct, frozen=True):
    number: int
    key: str  # the reference value as the contacts index holds it
    patch: RowPatch


async def update_job(conn: Connection, ctx: Context, job: Job, payload: bytes) -> JobOutcome:
    """Apply each row to every live lead of the campaign its reference value finds.

    A blank reference, the row's values (`row_to_patch`) and an unknown `user` are reported
    together; a row that passes them is refused when no live lead has its value. A lead found
    by several rows gets them in row order, as one update.
    """
    request = _decode_request(payload)
    reference = request.reference_field or "numeric"
    campaign_id = job.required_campaign()
    region = await default_region(conn, job.account_id)
    problems: dict[int, str] = {}
    known = await _known_agents(conn, job.account_id, filter(None, map(_user, request.rows)))
    parsed = _parse_rows(request.rows, reference, region, known, problems)

    # Which leads a value finds is decided under the campaign's lock, like every other write.
    await lock_campaigns(conn, [campaign_id])
    owners, states = await _find(conn, campaign_id, reference, {found.key for found in parsed})
    by_lead: dict[int, list[RowPatch]] = {}
    rows_of: dict[int, list[int]] = {}
    for found in parsed:
        leads = owners.get(found.key, [])
        if not leads:
            problems[found.number] = describe({DUPLICATE_CHECK: not_found(reference)})
        for lead in leads:
            by_lead.setdefault(lead, []).append(found.patch)
            rows_of.setdefault(lead, []).append(found.number)

    decided = {
        lead_id: decide_update(states[lead_id][0], merge_patches(fields, patches), region)
        for lead_id, patches in sorted(by_lead.items())
        for fields in [states[lead_id][1]]
    }
    # A lead the update would give a number on the do-not-call list keeps its numbers: none of
    # the rows that found it apply, and each is refused as an insert would be.
    checked = await dnc.check_updates(
        conn, job.account_id, {i: (states[i][0], events) for i, events in decided.items()}
    )
    blocked = checked.blocked
    blocks: dict[int, DncBlock] = {}
    for lead_id, block in blocked.items():
        for number in rows_of[lead_id]:
            problems[number] = _blocked_text(block)
            blocks[number] = block
    appends: list[PendingAppend] = []
    written: list[LeadEvent] = []
    for lead_id, events in decided.items():
        if events and lead_id not in blocked:
            with_marks = [*events, *checked.marks.get(lead_id, ())]
            appends.append(lead_append(ctx, states[lead_id][0], with_marks))
            written.extend(with_marks)
    await record(conn, appends)
    return JobOutcome(
        updated=sum(isinstance(event, LeadUpdated) for event in written),
        reassigned=sum(isinstance(event, LeadReassigned) for event in written),
        rejected_rows=_rejected(request.rows, problems, blocks),
    )


def _parse_rows(
    rows: list[dict[str, str]],
    reference: str,
    region: str | None,
    known: set[str],
    problems: dict[int, str],
) -> list[_Found]:
    """Each row's patch and lookup key; a row with a problem goes to `problems` instead."""
    parsed = []
    for number, row in enumerate(rows, start=1):
        patch = row_to_patch(row, reference)
        found = _with_user(
            patch.problems if isinstance(patch, RowProblem) else {}, _user(row), known
        )
        if found or isinstance(patch, RowProblem):
            problems[number] = describe(found)
            continue
        value = row.get(reference, "")
        key = dedupe_key(value, region) if reference == "numeric" else value
        parsed.append(_Found(number, key, patch))
    return parsed


async def _find(
    conn: Connection, campaign_id: int, reference: str, keys: set[str]
) -> tuple[dict[str, list[int]], dict[int, tuple[LeadState, LeadFields]]]:
    """The live leads each key finds (one query on contacts, one read of their streams)."""
    kind = "phone" if reference == "numeric" else f"crm:{reference}"
    candidates: dict[str, list[int]] = {}
    for match in await conn.fetch(SELECT_MATCHES, campaign_id, kind, sorted(keys - {""})):
        candidates.setdefault(match["value"], []).append(match["lead_id"])
    loaded = await load_leads(conn, {lead for leads in candidates.values() for lead in leads})
    # Live per the fold (the truth, not the index) ...
    states = {i: (state, state.fields) for i, state in loaded.items() if state.fields is not None}
    owners: dict[str, list[int]] = {}
    for key, leads in candidates.items():
        live = [lead for lead in leads if lead in states]
        if reference == "numeric":
            # ... and by number only where it is the primary number: `numeric` is Flexydial's
            # primary number, the others are its `alt_numeric`.
            live = [lead for lead in live if states[lead][0].dedupe_keys[:1] == [key]]
        owners[key] = live
    return owners, states
