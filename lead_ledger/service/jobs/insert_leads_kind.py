"""The built-in job kind `insert_leads`: canonical lead rows inserted into one campaign (tests,
and dialects whose rows are already canonical)."""

from __future__ import annotations

from typing import Final

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadFields
from lead_ledger.ledger.job_events import RejectedRow
from lead_ledger.service.jobs.kinds import Job, JobOutcome
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.writer import Context

KIND: Final = "insert_leads"


class InsertLeadsPayload(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: int
    check_duplicates: bool = True
    rows: list[LeadFields] = []


DUPLICATE: Final = "duplicate phone number in campaign"
NO_PHONE: Final = "a lead needs at least one phone number"
DNC: Final = "the number is on the do-not-call list"


async def insert_leads_job(
    conn: Connection,
    ctx: Context,
    job: Job,
    payload: bytes,
    *,
    key_workers: KeyWorkers | None = None,
) -> JobOutcome:
    """Insert the rows; rows without a phone and duplicates become rejected rows. Large
    batches compute their phone keys in `key_workers` (bound by `service.job_kinds`)."""
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
        key_workers=key_workers,
    )
    rejected |= {valid[i][0]: DUPLICATE for i in result.duplicates}
    duplicates = {valid[i][0]: owners for i, owners in result.duplicates.items()}
    blocks = {valid[i][0]: block for i, block in result.blocked.items()}
    rejected |= dict.fromkeys(blocks, DNC)
    rows = dict(numbered)
    return JobOutcome(
        inserted=len(result.inserted),
        rejected_rows=[
            RejectedRow(
                row_number=n,
                row={"phone_numbers": ", ".join(rows[n].phone_numbers)},
                description=reason,
                dnc_entry_id=blocks[n].entry_id if n in blocks else None,
                dnc_scope=blocks[n].scope if n in blocks else None,
                existing_lead_ids=duplicates.get(n, []),
            )
            for n, reason in sorted(rejected.items())
        ],
    )
