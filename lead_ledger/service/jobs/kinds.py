"""What a job handler sees and returns, and the registry of kinds a job worker runs.

The registry is a plain mapping built where the app is composed (`service.job_kinds`) and
handed to the worker: importing a dialect's module registers nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.job_events import CellValue, JobOutput, RejectedRow
from lead_ledger.service.writer import Context


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

    def required_campaign(self) -> int:
        """The job's campaign, for kinds whose jobs always name one (an error without)."""
        if self.campaign_id is None:
            raise ValueError(f"job {self.job_id} names no campaign")
        return self.campaign_id


class JobOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a handler did; `callback_body` replaces the generic callback (vendor shapes)."""

    inserted: int = 0
    updated: int = 0
    reassigned: int = 0
    rejected_rows: list[RejectedRow] = []
    callback_body: dict[str, Any] | None = None
    output: JobOutput | None = None  # a file the job wrote (exports)
    # The job failed for good (JobFailed with this error, no retry): a handler that finds its
    # work void returns it having written nothing.
    error: str | None = None


JobHandler = Callable[[Connection, Context, Job, bytes], Awaitable[JobOutcome]]
# The callback body of a failed job, for dialects whose callback has a shape of its own.
FailureBody = Callable[[Job, str], dict[str, Any]]
# Long read-only work before the job's transaction: given the job and its payload, it yields
# what the handler gets instead of the payload, and cleans up once the handler is done.
JobPreparation = Callable[[Connection, Job, bytes], AbstractAsyncContextManager[bytes]]


@dataclass(frozen=True, slots=True)
class JobKind:
    """How jobs of one kind run: `handler` writes through the lead services; a failed job's
    callback is `failure_body(job, error)` when given, else the generic failure body.

    `prepare`, when given, runs before the job's transaction, outside any (its own read-only
    transactions take no transaction id): a job's transaction holds one from its queue row's
    lock to its commit, and while it does the feed's visibility fence holds back every reader of
    the feed (SSE, `/v1/events`, webhooks). An export reads for a minute; it must not do so
    there."""

    handler: JobHandler
    failure_body: FailureBody | None = None
    prepare: JobPreparation | None = None
    # Whether the job writes under its account's lock too (it starts or stops its campaign):
    # taken with the campaign's, before the queue row's lock gives the run a transaction id.
    locks_account: Callable[[Job], bool] | None = None


# Job kind name -> how its jobs run. A job of a kind missing here fails ("no handler").
JobKinds = Mapping[str, JobKind]
