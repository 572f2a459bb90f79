"""Exports as of a time folded by several worker processes, one share of the leads each.

Folding a lead from the log costs tens of microseconds of Python (reading its events, opening
its sealed data, folding, writing the row); in one process that caps an export as of a time
near 20,000 rows/s, however many cores the machine has. Here the leads that began by then are
cut by lead id into as many shares of equal size as there are workers
(service/export_worker.py). Each worker reads the export's own snapshot (`pg_export_snapshot`,
as parallel `pg_dump` does) and spools its share; the CRM and extra names of all shares make
the file's columns; each worker then writes its share's csv lines, and this process joins the
header and the shares in lead id order. xlsx and jsonl are made here from the workers' spools.

Small exports (fewer than LEDGER_EXPORT_PARALLEL_MIN_LEADS leads) are folded in the job's own
process: starting the workers costs more than it saves. A worker that cannot start, or fails,
makes the caller fold the export in its own process instead (ExportWorkerError).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import IO, Final

import msgspec
import structlog

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.service.export_files import (
    Columns,
    ExportFormat,
    WrittenFile,
    file_columns,
    spooled_rows,
    write_csv,
    write_xlsx,
)
from lead_ledger.service.export_rows import SELECT_SHARES, ExportQuery
from lead_ledger.service.export_worker import (
    Answer,
    Failed,
    Progress,
    Render,
    Rendered,
    Spooled,
    WorkerTask,
)
from lead_ledger.service.key_workers import worker_count
from lead_ledger.settings import Settings

log = structlog.get_logger(__name__)

# An answer line holds at most the CRM and extra names of a share.
_LINE_LIMIT: Final = 64 * 1024 * 1024
_decode_answer: Final = msgspec.json.Decoder(Answer).decode
_encode: Final = msgspec.json.Encoder().encode


class ExportWorkers(msgspec.Struct, frozen=True, kw_only=True):
    """How exports as of a time are folded: by `count` worker processes connecting to
    `database_url` (0: one per core; 1: none, in the job's own process)."""

    database_url: str
    count: int = 0
    min_leads: int = 20_000

    @classmethod
    def of(cls, settings: Settings, database_url: str) -> ExportWorkers:
        return cls(
            database_url=database_url,
            count=settings.export_workers,
            min_leads=settings.export_parallel_min_leads,
        )

    def processes(self) -> int:
        return worker_count() if self.count == 0 else self.count


class ExportWorkerError(RuntimeError):
    """A worker could not start, failed, or ended before its answer."""


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> _Worker:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lead_ledger.service.export_worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_LINE_LIMIT,
                # Its own session: Ctrl-C in the server's terminal is the server's. (Not
                # `process_group`, which uvloop's subprocesses do not take.)
                start_new_session=True,
            )
        except (OSError, ValueError) as error:
            raise ExportWorkerError(f"an export worker did not start: {error}") from error
        return cls(process)

    async def tell(self, message: msgspec.Struct) -> None:
        stdin = self.process.stdin
        if stdin is None:  # pragma: no cover - started with a pipe
            raise ExportWorkerError("the export worker has no stdin")
        try:
            stdin.write(_encode(message) + b"\n")
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as error:
            raise ExportWorkerError("an export worker ended before its task") from error

    async def answer(self) -> Answer:
        stdout = self.process.stdout
        if stdout is None:  # pragma: no cover - started with a pipe
            raise ExportWorkerError("the export worker has no stdout")
        line = await stdout.readline()
        if not line:
            code = await self.process.wait()
            raise ExportWorkerError(f"an export worker ended with {code} before its answer")
        try:
            answer = _decode_answer(line)
        except msgspec.DecodeError as error:
            raise ExportWorkerError("an export worker answered something else") from error
        if isinstance(answer, Failed):
            raise ExportWorkerError(f"an export worker failed: {answer.error}")
        return answer

    async def spooled(self, on_rows: Callable[[int], None] | None) -> Spooled:
        while True:
            answer = await self.answer()
            if isinstance(answer, Progress):
                if on_rows is not None:
                    on_rows(answer.rows)
            elif isinstance(answer, Spooled):
                return answer
            else:
                raise ExportWorkerError(f"an export worker answered {answer!r} before spooling")

    async def rendered(self) -> Rendered:
        answer = await self.answer()
        if not isinstance(answer, Rendered):
            raise ExportWorkerError(f"an export worker answered {answer!r}, not its lines")
        return answer

    async def stop(self) -> None:
        """Done with: it exits once its stdin closes; one that does not is killed."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def export_in_workers(
    conn: Connection,
    query: ExportQuery,
    *,
    fields: list[str],
    campaigns: dict[int, str],
    format: ExportFormat,  # noqa: A002 - the request's own name
    scratch: Path,
    workers: ExportWorkers,
    on_rows: Callable[[int], None] | None = None,
) -> WrittenFile | None:
    """The export's file made by the workers; None when it is to be folded in this process
    (not as of a time, one worker, or fewer leads than `min_leads`). Run inside the export's
    REPEATABLE READ transaction: its snapshot is the workers'."""
    shares = await _shares(conn, query, workers)
    if shares is None:
        return None
    snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")
    spools = [scratch / f"share-{n}.jsonl" for n in range(len(shares))]
    tasks = [
        WorkerTask(
            database_url=workers.database_url,
            master_key=key_store.master_key(),
            snapshot=snapshot,
            query=share,
            fields=fields,
            archived_column=query.include_archived,
            raw=format == "jsonl",
            campaigns=campaigns,
            spool=str(spool),
        )
        for share, spool in zip(shares, spools, strict=True)
    ]
    started: list[_Worker] = []
    try:
        started.extend([await _Worker.start() for _ in tasks])
        for worker, task in zip(started, tasks, strict=True):
            await worker.tell(task)
        done = await asyncio.gather(*(worker.spooled(on_rows) for worker in started))
        columns = file_columns(
            fields,
            chain.from_iterable(answer.crm for answer in done),
            chain.from_iterable(answer.extra for answer in done),
            archived=query.include_archived,
        )
        target = scratch / f"export.{format}"
        await _write(started, spools, columns, format, target)
    except BaseException:
        for worker in started:
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
        raise
    finally:
        for worker in started:
            await worker.stop()
    return WrittenFile(target, sum(answer.rows for answer in done), target.stat().st_size)


async def _shares(
    conn: Connection, query: ExportQuery, workers: ExportWorkers
) -> list[ExportQuery] | None:
    """The export cut by lead id into a share per worker; None when it is not worth it."""
    count = workers.processes()
    if query.as_of is None or count < 2:
        return None
    fractions = [n / count for n in range(1, count)]
    found = await conn.fetchrow(
        SELECT_SHARES, query.account_id, query.as_of, query.campaign_id, fractions
    )
    if found is None or found["streams"] < workers.min_leads:
        return None
    cuts: list[int | None] = [None, *found["cuts"], None]
    return [msgspec.structs.replace(query, after=cuts[n], until=cuts[n + 1]) for n in range(count)]


async def _write(
    started: Sequence[_Worker],
    spools: Sequence[Path],
    columns: Columns,
    format: ExportFormat,  # noqa: A002 - the request's own name
    target: Path,
) -> None:
    """The file from the shares: csv lines written by each worker and joined here; xlsx and
    jsonl made here from the spools."""
    if format == "csv":
        parts = [path.with_suffix(".csv") for path in spools]
        for worker, part in zip(started, parts, strict=True):
            await worker.tell(Render(columns=columns, path=str(part)))
        await asyncio.gather(*(worker.rendered() for worker in started))
        with target.open("wb") as out:
            write_csv(iter(()), columns, out)  # the header
            _append(parts, out)  # each share ends its last line: they join whole
        return
    for worker in started:
        await worker.tell(Render(columns=None, path=None))
    if format == "jsonl":
        with target.open("wb") as out:
            _append(spools, out)
    else:
        write_xlsx(spooled_rows(_lines(spools), columns), columns, target)


def _append(paths: Sequence[Path], out: IO[bytes]) -> None:
    for path in paths:
        with path.open("rb") as part:
            shutil.copyfileobj(part, out, 1024 * 1024)


def _lines(paths: Sequence[Path]) -> Iterator[bytes]:
    """The spools' lines in order, each spool open while it is read."""
    for path in paths:
        with path.open("rb") as handle:
            yield from handle
