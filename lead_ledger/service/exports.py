"""Exports (docs/exports.md): a campaign's leads, now or as of a time, as a csv, xlsx or jsonl
file, made by a job of kind `export` (the same queue, workers and events as bulk uploads).

The job spools the leads to a temporary file, writes the file from it, and stores the file in
`job_output_chunks` in its own transaction, so that any `serve` process sharing the database
can stream it back a chunk at a time, and a worker that dies leaves no half file. JobCompleted
records the file (rows, bytes); the retention sweep removes files older than
LEDGER_EXPORT_RETENTION_HOURS and records each removal as JobOutputRemoved; an erasure of
leads removes every file of the account the same way, and an export whose read came before such
an erasure is failed rather than stored (docs/erasure.md, "Export files").
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import asyncpg
import msgspec
import structlog

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION, Actor
from lead_ledger.ledger.errors import LedgerError
from lead_ledger.ledger.job_events import JobOutput, JobOutputRemoved, stream_of_job
from lead_ledger.ledger.locks import LOCK_XACT, export_files_lock_key, export_queue_lock_key
from lead_ledger.ledger.store import head_position
from lead_ledger.service import jobs
from lead_ledger.service.export_files import (
    CONTENT_TYPES,
    EXPORTABLE,
    Columns,
    ExportFormat,
    Spool,
    WrittenFile,
    XlsxLimitError,
    spooled_rows,
    write_csv,
    write_xlsx,
)
from lead_ledger.service.export_parallel import ExportWorkerError, ExportWorkers, export_in_workers
from lead_ledger.service.export_rows import ExportQuery, export_leads
from lead_ledger.service.export_sql import copy_csv, field_names
from lead_ledger.service.reads import campaign_named
from lead_ledger.service.replica import REPLICA_ERRORS, Replica, replayed
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, PendingAppend, record, stream_append

log = structlog.get_logger(__name__)

KIND: Final = "export"
CHUNK_BYTES: Final = 1024 * 1024

SELECT_CAMPAIGN_NAMES: Final = "SELECT campaign_id, name FROM campaigns WHERE account_id = $1"
INSERT_CHUNK: Final = "INSERT INTO job_output_chunks (job_id, seq, data) VALUES ($1, $2, $3)"
SELECT_CHUNK: Final = "SELECT data FROM job_output_chunks WHERE job_id = $1 AND seq = $2"
SELECT_EXPORT: Final = """
SELECT j.job_id, j.state, j.options, j.output, j.output_removed_at, j.error, j.submitted_at,
       j.completed_at, CASE WHEN j.state = 'queued' AND q.state = 'running' THEN 'running'
                            ELSE j.state END AS shown_state
FROM jobs j LEFT JOIN job_queue q USING (job_id)
WHERE j.job_id = $1 AND j.account_id = $2 AND j.kind = 'export'
"""
# Files past their time, oldest first; the row lock lets one sweeper of several take each. A job
# that wrote no file has the JSON null as its output, not SQL's NULL.
SELECT_EXPIRED: Final = """
SELECT job_id, account_id FROM jobs
WHERE jsonb_typeof(output) = 'object' AND output_removed_at IS NULL AND completed_at < $1
ORDER BY completed_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
DELETE_CHUNKS: Final = "DELETE FROM job_output_chunks WHERE job_id = ANY($1::bigint[])"
# Every stored file of the account, row-locked: a sweeper removing one of them meanwhile is
# waited for, and its file is then no longer selected.
SELECT_ACCOUNT_FILES: Final = """
SELECT job_id, account_id FROM jobs
WHERE account_id = $1 AND kind = 'export' AND jsonb_typeof(output) = 'object'
  AND output_removed_at IS NULL
ORDER BY job_id
FOR UPDATE
"""
# The snapshot of the export's read, as pg_current_snapshot() gave it there.
SELECT_SNAPSHOT: Final = "SELECT pg_current_snapshot()::text"
# An erasure of leads of the account that the export's read did not see. Every transaction
# below the snapshot's xmin had ended when the read began, so one that wrote an event is in the
# read: only those from xmin on are looked at (the account feed index covers them). From the
# primary the snapshot is exact. From a replica ($3) it is not: a standby keeps the transactions
# running there apart from the snapshot's list (pg_current_snapshot() shows none of them), so
# every erasure from its xmin on counts as unseen; at worst an export read alongside an erasure
# that it did see fails too, and is made again.
SELECT_ERASED_SINCE_READ: Final = """
SELECT EXISTS (
    SELECT 1 FROM events
    WHERE account_id = $1 AND transaction_id >= pg_snapshot_xmin($2::text::pg_snapshot)
      AND type = 'SubjectErased' AND data->'lead_ids' <> '[]'::jsonb
      AND ($3 OR NOT pg_visible_in_snapshot(transaction_id, $2::text::pg_snapshot))
)
"""
ERASED_MEANWHILE: Final = "an erasure committed while this export was being made; export again"


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/exports`: which leads, as of when, in what file."""

    campaign: str | None = None  # a campaign name (or id) of the account; None: all
    as_of: datetime | None = None  # None: now
    format: ExportFormat = "csv"
    include_archived: bool = False
    fields: list[str] | None = None  # canonical field names; None: all


# Why an as_of after now is refused, after the name of what held it (the API's `as_of`, the
# CLI's `--as-of`): what the log will hold then is not known yet, so such a file could not be
# made again.
IN_THE_FUTURE: Final = "is in the future"


def in_the_future(as_of: datetime | None, now: datetime) -> bool:
    """Whether an export's `as_of` (with its offset) is after `now`: refused by every door."""
    return as_of is not None and as_of > now


# Exports of one account queued or running at once: the job queue is every account's, and is
# taken first in, first out, so one account's burst of exports would hold back every other
# account's uploads behind it.
MAX_EXPORTS_IN_PROGRESS: Final = 8
COUNT_IN_PROGRESS: Final = """
SELECT count(*) FROM job_queue
WHERE account_id = $1 AND kind = $2 AND state IN ('queued', 'running')
"""


class TooManyExportsError(LedgerError):
    """The account has MAX_EXPORTS_IN_PROGRESS exports queued or running already."""

    def __init__(self) -> None:
        super().__init__(
            f"{MAX_EXPORTS_IN_PROGRESS} exports of this account are in progress:"
            " ask again once one of them is done"
        )


class UnknownFieldError(ValueError):
    """`fields` names something that is no exportable field."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = list(names)


class UnusableFieldsError(ValueError):
    """`fields` names a field twice (a file with two such columns) or none at all."""


def _check_fields(fields: Sequence[str]) -> None:
    unknown = [name for name in fields if name not in EXPORTABLE]
    if unknown:
        raise UnknownFieldError(unknown)
    if not fields:
        raise UnusableFieldsError("fields is empty: give null for every field")
    twice = sorted({name for name in fields if fields.count(name) > 1})
    if twice:
        raise UnusableFieldsError(f"named twice: {', '.join(twice)}")


class ExportView(msgspec.Struct, frozen=True, kw_only=True):
    """An export as the API shows it."""

    export_id: int
    state: str  # queued | running | done | failed | removed
    campaign: str | None
    as_of: str | None
    format: str
    include_archived: bool
    fields: list[str] | None
    rows: int | None
    bytes: int | None
    read_from: str | None  # replica | primary: where the file was read from, once written
    submitted_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    removed_at: datetime | None
    download_url: str | None
    error: str | None = None


async def submit_export(
    conn: Connection, ctx: Context, account_id: int, request: ExportRequest
) -> int:
    """Check the request and queue its job; raises UnknownCampaignError, UnknownFieldError,
    UnusableFieldsError, TooManyExportsError."""
    campaign_id = await campaign_named(conn, account_id, request.campaign)
    # Not the queue's campaign: a job of a campaign runs under its lock, which would hold the
    # campaign's writers for as long as the export runs, and an export needs no lock (it reads
    # one snapshot, or the log up to a time).
    if request.fields is not None:
        _check_fields(request.fields)
    # An export reads at least this fresh: a replica serves it once it holds this position.
    head = await head_position(conn)
    async with write_transaction(conn):
        # Counted under the account's lock, so that requests at once cannot all pass the count.
        await conn.execute(LOCK_XACT, export_queue_lock_key(account_id))
        if await conn.fetchval(COUNT_IN_PROGRESS, account_id, KIND) >= MAX_EXPORTS_IN_PROGRESS:
            raise TooManyExportsError
        return await jobs.submit_job(
            conn,
            ctx,
            account_id=account_id,
            dialect="native",
            kind=KIND,
            campaign_id=None,
            payload=msgspec.json.encode(request),
            received=0,
            options={
                "campaign": request.campaign,
                "campaign_id": campaign_id,
                "as_of": request.as_of.isoformat() if request.as_of else None,
                "format": request.format,
                "include_archived": request.include_archived,
                "fields": ",".join(request.fields) if request.fields is not None else None,
                "position": head,
            },
        )


class PreparedFile(msgspec.Struct, frozen=True, kw_only=True):
    """An export's file, written before the job's transaction: what its handler stores."""

    path: str
    rows: int
    size: int
    format: ExportFormat
    read_from: str
    snapshot: str  # the read's pg_current_snapshot(), where `read_from` took it
    error: str | None = None  # why no file could be written (the job fails with it)


@asynccontextmanager
async def prepare_export(
    conn: Connection,
    job: jobs.Job,
    payload: bytes,
    *,
    workers: ExportWorkers | None = None,
    replica: Replica | None = None,
) -> AsyncIterator[bytes]:
    """Write the file in a temporary directory, reading in one read-only REPEATABLE READ
    transaction (one snapshot for the CRM and extra names and the rows, and no transaction id
    held against the feed's readers); the directory goes once the job is done. With a
    replica that holds the log as it was when the export was asked for, the export reads the
    replica (and so do its workers)."""
    async with AsyncExitStack() as stack:
        prepared = None
        if replica is not None:
            prepared = await _prepared_on_replica(stack, replica, job, payload, workers)
        if prepared is None:
            prepared = await stack.enter_async_context(
                _prepared(conn, job, payload, workers, "primary")
            )
        yield prepared


async def _prepared_on_replica(
    stack: AsyncExitStack,
    replica: Replica,
    job: jobs.Job,
    payload: bytes,
    workers: ExportWorkers | None,
) -> bytes | None:
    """The file read from the replica, once it holds the log as it stood when the export was
    asked for; None when it does not in time, or fails (the primary writes it then)."""
    position = job.options.get("position")
    wanted = position if isinstance(position, int) else 0  # an export from before replicas
    try:
        # The connection goes back at once when the replica is not used; otherwise it is
        # handed to `stack` with the file, held until the job is done with them.
        async with AsyncExitStack() as held:
            conn = await held.enter_async_context(replica.pool.acquire())
            if wanted >= 1 and not await replayed(conn, wanted, replica.wait_seconds):
                return None
            if workers is not None:
                workers = msgspec.structs.replace(workers, database_url=replica.url)
            prepared = await held.enter_async_context(
                _prepared(conn, job, payload, workers, "replica")
            )
            stack.push_async_exit(held.pop_all())
            return prepared
    except REPLICA_ERRORS as error:
        log.warning("replica_export_failed", job_id=job.job_id, error=f"{type(error).__name__}")
        return None


@asynccontextmanager
async def _prepared(
    conn: Connection, job: jobs.Job, payload: bytes, workers: ExportWorkers | None, read_from: str
) -> AsyncIterator[bytes]:
    request = msgspec.json.decode(payload, type=ExportRequest)
    campaign_id = job.options.get("campaign_id")
    query = ExportQuery(
        account_id=job.account_id,
        campaign_id=campaign_id if isinstance(campaign_id, int) else None,
        as_of=request.as_of,
        include_archived=request.include_archived,
    )
    with tempfile.TemporaryDirectory(prefix="lead-ledger-export-") as scratch:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot: str = await conn.fetchval(SELECT_SNAPSHOT)
            failure: str | None = None
            try:
                written = await write_export_file(
                    conn, query, request, Path(scratch), workers=workers
                )
            except XlsxLimitError as error:
                # The same on every attempt: the job fails at once, saying why.
                written, failure = WrittenFile(Path(scratch), 0, 0), str(error)
        prepared = PreparedFile(
            path=str(written.path),
            rows=written.rows,
            size=written.size,
            format=request.format,
            read_from=read_from,
            snapshot=snapshot,
            error=failure,
        )
        yield msgspec.json.encode(prepared)


async def run_export(
    conn: Connection,
    ctx: Context,  # noqa: ARG001 - an export writes no lead events
    job: jobs.Job,
    payload: bytes,
) -> jobs.JobOutcome:
    """Store the prepared file in chunks, in the job's transaction (`payload` is the
    PreparedFile `prepare_export` made); fail the job instead when an erasure of the account's
    leads committed after the file was read (the file may hold what it erased)."""
    prepared = msgspec.json.decode(payload, type=PreparedFile)
    if prepared.error is not None:
        return jobs.JobOutcome(error=prepared.error)
    # Held to the commit, as an erasure removing the account's files holds it to its own: an
    # erasure that commits first is seen by the check below, one that comes after finds this
    # file stored and removes it.
    await conn.execute(LOCK_XACT, export_files_lock_key(job.account_id))
    if await conn.fetchval(
        SELECT_ERASED_SINCE_READ,
        job.account_id,
        prepared.snapshot,
        prepared.read_from == "replica",
    ):
        return jobs.JobOutcome(error=ERASED_MEANWHILE)
    chunks = 0
    for data in _file_chunks(Path(prepared.path)):
        await conn.execute(INSERT_CHUNK, job.job_id, chunks, data)
        chunks += 1
    stored = JobOutput(
        file_name=f"export-{job.job_id}.{prepared.format}",
        content_type=CONTENT_TYPES[prepared.format],
        rows=prepared.rows,
        bytes=prepared.size,
        chunks=chunks,
        read_from=prepared.read_from,
    )
    return jobs.JobOutcome(output=stored)


def _file_chunks(path: Path) -> Iterator[bytes]:
    """The file a chunk at a time (a local temporary file: each read takes a millisecond)."""
    with path.open("rb") as handle:
        while data := handle.read(CHUNK_BYTES):
            yield data


async def write_export_file(
    conn: Connection,
    query: ExportQuery,
    request: ExportRequest,
    scratch: Path,
    on_rows: Callable[[int], None] | None = None,
    workers: ExportWorkers | None = None,
) -> WrittenFile:
    """The export's file in `scratch` (the CLI writes it this way too; `on_rows` hears of each
    batch of leads spooled). Run it in a REPEATABLE READ transaction: one snapshot. A large
    export as of a time is folded by `workers` (service/export_parallel.py)."""
    fields = request.fields if request.fields is not None else list(EXPORTABLE)
    if request.format == "csv" and query.as_of is None:
        return await _copied_csv(conn, query, fields, scratch, on_rows)
    campaigns = {
        r["campaign_id"]: r["name"]
        for r in await conn.fetch(SELECT_CAMPAIGN_NAMES, query.account_id)
    }
    if workers is not None:
        try:
            written = await export_in_workers(
                conn,
                query,
                fields=fields,
                campaigns=campaigns,
                format=request.format,
                scratch=scratch,
                workers=workers,
                on_rows=on_rows,
            )
        except ExportWorkerError as error:
            # The snapshot is still this transaction's: the same rows, folded here.
            log.warning("export_workers_failed", error=str(error))
            written = None
        if written is not None:
            return written
    spool_path = scratch / "spool.jsonl"
    with spool_path.open("w+b") as handle:
        spool = Spool(
            handle,
            campaigns,
            fields,
            archived_column=query.include_archived,
            raw=request.format == "jsonl",
        )
        async for batch in export_leads(conn, query):
            spool.add(batch)
            if on_rows is not None:
                on_rows(len(batch))
        handle.flush()
        if request.format == "jsonl":
            return WrittenFile(spool_path, spool.rows, spool_path.stat().st_size)
        columns = spool.columns()
        rows = spooled_rows(spool.lines(), columns)
        target = scratch / f"export.{request.format}"
        if request.format == "csv":
            with target.open("wb") as out:
                write_csv(rows, columns, out)
        else:
            write_xlsx(rows, columns, target)
    return WrittenFile(target, spool.rows, target.stat().st_size)


async def _copied_csv(
    conn: Connection,
    query: ExportQuery,
    fields: list[str],
    scratch: Path,
    on_rows: Callable[[int], None] | None,
) -> WrittenFile:
    """A csv of now, rendered by PostgreSQL (service/export_sql.py). The CRM and extra names
    and the rows must come from one snapshot (a name written in between would have values and
    no column): callers run it in a REPEATABLE READ transaction."""
    target = scratch / "export.csv"
    columns = await _copy_columns(conn, query, fields)
    rows = await copy_csv(conn, query, columns, target)
    if on_rows is not None:
        on_rows(rows)
    return WrittenFile(target, rows, target.stat().st_size)


async def _copy_columns(conn: Connection, query: ExportQuery, fields: list[str]) -> Columns:
    return Columns(
        fields=tuple(name for name in fields if name not in ("crm", "extra")),
        crm=await field_names(conn, query, "crm") if "crm" in fields else [],
        extra=await field_names(conn, query, "extra") if "extra" in fields else [],
        archived=query.include_archived,
    )


async def export_view(
    conn: Connection, account_id: int, export_id: int, *, retention: timedelta, base: str
) -> ExportView | None:
    """The account's export, or None (another account's is a missing one). `base` is where
    clients reach the service (the download_url starts with it)."""
    row = await conn.fetchrow(SELECT_EXPORT, export_id, account_id)
    if row is None:
        return None
    options = msgspec.json.decode(row["options"])
    output = msgspec.json.decode(row["output"], type=JobOutput | None) if row["output"] else None
    removed = row["output_removed_at"]
    state = "removed" if removed is not None else row["shown_state"]
    fields = options.get("fields")
    available = output is not None and removed is None
    completed = row["completed_at"]
    return ExportView(
        export_id=row["job_id"],
        state=state,
        campaign=options.get("campaign"),
        as_of=options.get("as_of"),
        format=options.get("format", "csv"),
        include_archived=bool(options.get("include_archived")),
        fields=None if not isinstance(fields, str) else [f for f in fields.split(",") if f],
        rows=output.rows if output else None,
        bytes=output.bytes if output else None,
        read_from=output.read_from if output else None,
        submitted_at=row["submitted_at"],
        completed_at=row["completed_at"],
        expires_at=completed + retention if output is not None and completed else None,
        removed_at=removed,
        download_url=f"{base}/v1/exports/{export_id}/file" if available else None,
        error=row["error"],
    )


async def file_of(conn: Connection, account_id: int, export_id: int) -> JobOutput | None:
    """The export's stored file, while it is there: None before its job wrote one (queued,
    running or failed: its output is then the JSON null), and once it is removed."""
    row = await conn.fetchrow(SELECT_EXPORT, export_id, account_id)
    if row is None or row["output"] is None or row["output_removed_at"] is not None:
        return None
    output: JobOutput | None = msgspec.json.decode(row["output"], type=JobOutput | None)
    return output


async def file_chunks(pool: asyncpg.Pool, export_id: int, chunks: int) -> AsyncIterator[bytes]:
    """The file's chunks in order, a pooled connection held for one read each (not while a slow
    client takes the chunk); stops if the file is removed meanwhile."""
    for seq in range(chunks):
        async with pool.acquire() as conn:
            data = await conn.fetchval(SELECT_CHUNK, export_id, seq)
        if data is None:
            return
        yield data


async def sweep_expired(
    conn: Connection, now: datetime, retention: timedelta, limit: int = 100
) -> int:
    """Remove files completed before `now - retention`: their chunks go, JobOutputRemoved is
    recorded on each job's stream. Returns how many were removed."""
    async with write_transaction(conn):
        expired = await conn.fetch(SELECT_EXPIRED, now - retention, limit)
        await remove_files(
            conn,
            [(row["job_id"], row["account_id"]) for row in expired],
            "retention",
        )
    return len(expired)


async def remove_account_files(conn: Connection, ctx: Context, account_id: int) -> list[int]:
    """Remove every stored export file of the account (an erasure of its leads: any of them may
    hold one), in the caller's transaction; returns their job ids. Takes the account's export
    files lock, after any campaign lock of the caller's, and holds it to the commit."""
    await conn.execute(LOCK_XACT, export_files_lock_key(account_id))
    rows = await conn.fetch(SELECT_ACCOUNT_FILES, account_id)
    files = [(row["job_id"], row["account_id"]) for row in rows]
    await remove_files(conn, files, "erasure", ctx)
    return [job_id for job_id, _ in files]


async def remove_files(
    conn: Connection, files: Sequence[tuple[int, int]], reason: str, ctx: Context | None = None
) -> None:
    """Remove stored files, each a (job id, account id) whose jobs row the caller has locked:
    their chunks go and each job's stream gets JobOutputRemoved (`reason`), recorded by `ctx`
    (by default the account's native API: no one asked for it)."""
    if not files:
        return
    await conn.execute(DELETE_CHUNKS, [job_id for job_id, _ in files])
    appends: list[PendingAppend] = [
        stream_append(
            ctx or Context(actor=Actor(dialect="native", account_id=account_id)),
            stream_of_job(job_id),
            ANY_VERSION,
            [JobOutputRemoved(job_id=job_id, reason=reason)],
            account_id=account_id,
        )
        for job_id, account_id in files
    ]
    await record(conn, appends)
