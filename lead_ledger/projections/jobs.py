"""The `jobs` view: one row per bulk job, folded from its stream `job-<id>` (key job_id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec

from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import DomainEvent
from lead_ledger.ledger.job_events import (
    CallbackAbandoned,
    CallbackAttempted,
    JobCompleted,
    JobFailed,
    JobOutputRemoved,
    JobRowsErased,
    JobSubmitted,
)
from lead_ledger.projections.base import Projection, Rows

_JOB_EVENTS = (
    JobSubmitted,
    JobCompleted,
    JobFailed,
    CallbackAttempted,
    CallbackAbandoned,
    JobRowsErased,
    JobOutputRemoved,
)


def erased_rows(
    rejected_rows: list[dict[str, Any]], row_numbers: list[int]
) -> list[dict[str, Any]]:
    """The rejected rows with those numbers as an erased row reads: no cells, `erased` set,
    the same as folding a JobCompleted whose rows' keys are gone."""
    gone = set(row_numbers)
    return [
        {k: v for k, v in r.items() if k != "row"} | {"row": None, "erased": True}
        if r["row_number"] in gone
        else r
        for r in rejected_rows
    ]


class JobsProjection(Projection):
    name: ClassVar[str] = "jobs"
    table: ClassVar[str] = "jobs"
    key: ClassVar[str] = "job_id"
    columns: ClassVar[tuple[str, ...]] = (
        "job_id",
        "account_id",
        "dialect",
        "kind",
        "campaign_id",
        "upload_ref",
        "state",
        "received",
        "inserted",
        "updated",
        "reassigned",
        "rejected",
        "rejected_rows",
        "rejected_columns",
        "error",
        "callback_url",
        "callback_state",
        "submitted_at",
        "completed_at",
        "callback_attempts",
        "options",
        "output",
        "output_removed_at",
    )
    jsonb_columns: ClassVar[frozenset[str]] = frozenset(
        {"rejected_rows", "rejected_columns", "callback_attempts", "options", "output"}
    )
    handles: ClassVar[frozenset[type]] = frozenset(_JOB_EVENTS)

    def key_of(self, event: DomainEvent) -> tuple[int, bool]:
        if not isinstance(event, _JOB_EVENTS):
            raise TypeError(f"{type(event).__name__} is not a job event")
        return event.job_id, isinstance(event, JobSubmitted)

    def fold(self, rows: Rows, recorded: RecordedEvent, event: DomainEvent) -> None:
        at = recorded.recorded_at
        if isinstance(event, JobSubmitted):
            rows.put(event.job_id, _submitted(event, at))
            return
        if not isinstance(event, _JOB_EVENTS):
            return
        row = rows.get(event.job_id)
        if row is None:  # a job's stream always starts with JobSubmitted
            return
        if isinstance(event, CallbackAttempted | CallbackAbandoned):
            row = _after_callback(row, event, at)
        else:
            row = _after_outcome(row, event, at)
        rows.put(event.job_id, row)


def _submitted(event: JobSubmitted, at: datetime) -> dict[str, Any]:
    """A job's row as its JobSubmitted begins it."""
    return {
        "job_id": event.job_id,
        "account_id": event.account_id,
        "dialect": event.dialect,
        "kind": event.kind,
        "campaign_id": event.campaign_id,
        "upload_ref": event.upload_ref,
        "state": "queued",
        "received": event.received,
        "inserted": 0,
        "updated": 0,
        "reassigned": 0,
        "rejected": 0,
        "rejected_rows": [],
        "rejected_columns": [],
        "error": None,
        "callback_url": event.callback_url,
        "callback_state": None,
        "submitted_at": at,
        "completed_at": None,
        "callback_attempts": [],
        "options": event.options,
        "output": None,
        "output_removed_at": None,
    }


def _after_outcome(row: dict[str, Any], event: DomainEvent, at: datetime) -> dict[str, Any]:
    """The row after the job's outcome, or a later change to it (erased rows, removed file)."""
    if isinstance(event, JobCompleted):
        return row | {
            "state": "done",
            "inserted": event.inserted,
            "updated": event.updated,
            "reassigned": event.reassigned,
            "rejected": event.rejected,
            "rejected_rows": msgspec.to_builtins(event.rejected_rows),
            "rejected_columns": event.rejected_columns,
            "output": msgspec.to_builtins(event.output),
            "completed_at": at,
            "callback_state": "pending" if row["callback_url"] else None,
        }
    if isinstance(event, JobFailed):
        return row | {"state": "failed", "error": event.error, "completed_at": at}
    if isinstance(event, JobRowsErased):
        return row | {"rejected_rows": erased_rows(row["rejected_rows"], event.row_numbers)}
    if isinstance(event, JobOutputRemoved):
        return row | {"output_removed_at": at}
    return row


def _after_callback(
    row: dict[str, Any], event: CallbackAttempted | CallbackAbandoned, at: datetime
) -> dict[str, Any]:
    if isinstance(event, CallbackAbandoned):
        return row | {"callback_state": "abandoned"}
    attempt = {
        "attempt": event.attempt,
        "url": event.url,
        "status_code": event.status_code,
        "error": event.error,
        "delivered": event.delivered,
        "at": at.isoformat(),
    }
    row = row | {"callback_attempts": [*row["callback_attempts"], attempt]}
    if event.delivered:
        row["callback_state"] = "delivered"
    return row
