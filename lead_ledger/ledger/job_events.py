"""Job events (stream job-<id>): a bulk job's submission, outcome and callback deliveries.

Standalone (no import of events.py) so that events.py can import these into DomainEvent without
a cycle; the base has the same tagging as every other event, so one decoder reads them all.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from lead_ledger.ledger.envelope import Sealed

# A rejected row's cells, as the uploader sent them (the same shapes as events.ExtraValue).
CellValue: TypeAlias = str | int | float | bool | None


class _JobEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    pass


class RejectedRow(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One input row the job refused, by its 1-based number in the upload, and why. `row` is
    None once its subject is erased (ledger/sealing.py)."""

    row_number: int
    row: dict[str, CellValue] | None
    description: str
    sealed: Sealed | None = None
    erased: bool = False
    # Refused by the do-not-call registry: the entry, and "account" or "campaign".
    dnc_entry_id: int | None = None
    dnc_scope: str | None = None
    # Refused as a duplicate: the leads it duplicates (ids, in clear), so that an erasure of
    # one of them by its id finds the row, which holds the same person's number.
    existing_lead_ids: list[int] = msgspec.field(default_factory=list)


class JobSubmitted(_JobEvent, frozen=True, kw_only=True, tag="JobSubmitted"):
    job_id: int
    account_id: int
    dialect: str
    kind: str
    campaign_id: int | None
    received: int  # rows in the upload
    callback_url: str | None = None
    upload_ref: str | None = None  # the uploader's own name for it (Flexydial's phonebook name)
    options: dict[str, CellValue] = {}


class JobOutput(msgspec.Struct, frozen=True, kw_only=True):
    """A file a job wrote (an export): kept in job_output_chunks until it is removed."""

    file_name: str
    content_type: str
    rows: int
    bytes: int
    chunks: int
    # Where the file was read from: "replica" (LEDGER_READ_DATABASE_URL) or "primary"; None
    # for files written before replicas were known.
    read_from: str | None = None


class JobCompleted(_JobEvent, frozen=True, kw_only=True, tag="JobCompleted"):
    job_id: int
    inserted: int = 0
    updated: int = 0
    reassigned: int = 0
    rejected: int = 0
    rejected_rows: list[RejectedRow] = []
    # The names of the rejected rows' cells in the order the upload gave them (the log keeps
    # an object's keys in its own order): the columns of the job's rejected.csv.
    rejected_columns: list[str] = []
    output: JobOutput | None = None


class JobFailed(_JobEvent, frozen=True, kw_only=True, tag="JobFailed"):
    job_id: int
    error: str


class CallbackAttempted(_JobEvent, frozen=True, kw_only=True, tag="CallbackAttempted"):
    job_id: int
    attempt: int
    url: str
    status_code: int | None = None
    error: str | None = None
    delivered: bool = False


class CallbackAbandoned(_JobEvent, frozen=True, kw_only=True, tag="CallbackAbandoned"):
    job_id: int
    attempts: int


class JobRowsErased(_JobEvent, frozen=True, kw_only=True, tag="JobRowsErased"):
    """Rejected rows of this job whose subjects were erased (erasure `erasure_id`): the job
    views show them without their cells from now on."""

    job_id: int
    row_numbers: list[int]
    erasure_id: str


class JobOutputRemoved(_JobEvent, frozen=True, kw_only=True, tag="JobOutputRemoved"):
    """The job's output file was removed (`reason`: retention, or erasure: an erasure of the
    account's leads removes all its files)."""

    job_id: int
    reason: str


JobEvent: TypeAlias = (
    JobSubmitted
    | JobCompleted
    | JobFailed
    | CallbackAttempted
    | CallbackAbandoned
    | JobRowsErased
    | JobOutputRemoved
)


def stream_of_job(job_id: int) -> str:
    return f"job-{job_id}"
