"""One export worker process: folds its share of an export as of a time into a spool, then
writes the share's csv lines once it is told the file's columns (service/export_parallel.py).

Run as `python -m lead_ledger.service.export_worker` by the process making the export, which
writes one `WorkerTask` line on the worker's stdin and reads its answers, one JSON line each,
on its stdout. The task carries the database URL and the master key (never in the command
line or the environment, where other users of the machine could read them) and the snapshot
the export reads: the worker's transaction imports it, so every worker reads the database as
the export's own transaction does, and a subject erased meanwhile reads the same in all.
"""

from __future__ import annotations

import asyncio
import gc
import re
import sys
from pathlib import Path
from typing import IO, Final

import msgspec

from lead_ledger.ledger import key_store
from lead_ledger.ledger.database import connect
from lead_ledger.service.export_files import Columns, Spool, spooled_rows, write_csv
from lead_ledger.service.export_rows import ExportQuery, export_leads

# What pg_export_snapshot() returns ("00000003-0000001B-1"): the only text interpolated into
# SQL here (SET TRANSACTION SNAPSHOT takes no parameters), so it is checked first.
_SNAPSHOT: Final = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+").fullmatch


class WorkerTask(msgspec.Struct, frozen=True, kw_only=True):
    """What one worker folds, and where it spools it."""

    database_url: str
    master_key: bytes
    snapshot: str
    query: ExportQuery
    fields: list[str]
    archived_column: bool
    raw: bool  # a jsonl export's spool (service/export_files.py, Spool)
    campaigns: dict[int, str]
    spool: str


class Render(msgspec.Struct, frozen=True, kw_only=True):
    """The file's columns, when the share is to be written as csv lines to `path`; None: the
    spool is all the export needs (xlsx and jsonl are made from it by the export's process)."""

    columns: Columns | None
    path: str | None


class Progress(msgspec.Struct, frozen=True, tag=True):
    rows: int


class Spooled(msgspec.Struct, frozen=True, tag=True):
    """The share is in the spool: its rows and the CRM and extra names they hold."""

    rows: int
    crm: list[str]
    extra: list[str]


class Rendered(msgspec.Struct, frozen=True, tag=True):
    rows: int


class Failed(msgspec.Struct, frozen=True, tag=True):
    error: str


Answer = Progress | Spooled | Rendered | Failed
_encode: Final = msgspec.json.Encoder().encode


def _say(out: IO[bytes], answer: Answer) -> None:
    out.write(_encode(answer) + b"\n")
    out.flush()


async def spool_share(task: WorkerTask, spool: Spool, out: IO[bytes]) -> None:
    """The share's leads spooled in the export's snapshot, a Progress answer per batch."""
    if not _SNAPSHOT(task.snapshot):
        raise ValueError(f"not a snapshot id: {task.snapshot!r}")
    key_store.use_master_key(task.master_key)
    conn = await connect(task.database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{task.snapshot}'")
            async for batch in export_leads(conn, task.query):
                spool.add(batch)
                _say(out, Progress(len(batch)))
    finally:
        await conn.close()


def serve(stdin: IO[bytes], out: IO[bytes]) -> int:
    """Read the task, spool the share, then do what the next line says."""
    try:
        task = msgspec.json.decode(stdin.readline(), type=WorkerTask)
        with Path(task.spool).open("w+b") as handle:
            spool = Spool(
                handle,
                task.campaigns,
                task.fields,
                archived_column=task.archived_column,
                raw=task.raw,
            )
            asyncio.run(spool_share(task, spool, out))
            handle.flush()
            _say(out, Spooled(spool.rows, sorted(spool.crm), sorted(spool.extra)))
            render = msgspec.json.decode(stdin.readline(), type=Render)
            if render.columns is not None and render.path is not None:
                with Path(render.path).open("wb") as lines:
                    rows = spooled_rows(spool.lines(), render.columns)
                    write_csv(rows, render.columns, lines, header=False)
                _say(out, Rendered(spool.rows))
    except Exception as error:  # noqa: BLE001 - the export's process decides what it means
        # The error's type and text only: no row of the share's data is in either.
        _say(out, Failed(f"{type(error).__name__}: {error}"))
        return 1
    return 0


def main() -> None:
    # A short-lived process that allocates row after row and keeps little: the cyclic
    # collector would only walk the same young objects again and again.
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))


if __name__ == "__main__":
    main()
