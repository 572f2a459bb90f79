"""`lead-ledger export`: an account's leads (one campaign or all, now or as of a time) written to a
csv, xlsx or jsonl file with a progress bar, the same file `POST /v1/exports` makes
(docs/exports.md), without the job queue: for an operator at the database's side."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import msgspec
from rich.console import Console

from lead_ledger.cli_account import account_connection
from lead_ledger.cli_projections import progress_bar
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import database_urls
from lead_ledger.service.export_files import ExportFormat, XlsxLimitError
from lead_ledger.service.export_parallel import ExportWorkers
from lead_ledger.service.export_rows import ExportQuery
from lead_ledger.service.exports import (
    IN_THE_FUTURE,
    ExportRequest,
    in_the_future,
    write_export_file,
)
from lead_ledger.service.inputs import OUT_OF_RANGE, in_utc
from lead_ledger.service.reads import UnknownCampaignError, campaign_named
from lead_ledger.settings import Settings


class Exported(msgspec.Struct, frozen=True, kw_only=True):
    file: str
    rows: int
    bytes: int


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export", help="write an account's leads (now or as of a time) to a csv, xlsx or jsonl file"
    )
    parser.add_argument("--account", required=True, help="the account's name or id")
    parser.add_argument("--campaign", help="one campaign (default: every campaign)")
    parser.add_argument(
        "--as-of", metavar="TIME", help="ISO 8601; the leads as they stood then (default: now)"
    )
    parser.add_argument("--format", choices=get_args(ExportFormat), default="csv")
    parser.add_argument(
        "--include-archived",
        action="store_true",
        help="add the archive's leads (as they were then, with --as-of), and an archived column",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="the file to write")


def _as_of(text: str | None) -> datetime | None:
    """--as-of as a time with its offset (UTC without one); a ValueError holding the line that
    says why, for a time the API would refuse as `as_of` too."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of {text!r} is not an ISO 8601 time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if in_utc(moment) is None:
        raise ValueError(f"--as-of {text!r} {OUT_OF_RANGE}")
    if in_the_future(moment, datetime.now(UTC)):
        raise ValueError(f"--as-of {text!r} {IN_THE_FUTURE}")
    return moment


async def run_export(args: argparse.Namespace, settings: Settings) -> int:
    """0 written, 1 refused (no such account or campaign, a file that cannot be written), 2 an
    invalid time (also one after now, which the API refuses too)."""
    try:
        as_of = _as_of(args.as_of)
    except ValueError as error:
        sys.stderr.write(f"lead-ledger: {error}\n")
        return 2
    if (why := _unwritable(args.output)) is not None:
        sys.stderr.write(f"lead-ledger: cannot write {args.output}: {why}\n")
        return 1
    request = ExportRequest(
        campaign=args.campaign,
        as_of=as_of,
        format=args.format,
        include_archived=args.include_archived,
    )
    urls = await database_urls(settings)
    workers = ExportWorkers.of(settings, urls.service)
    async with account_connection(settings, args.account, urls) as found:
        if found is None:
            return 1
        conn, account_id = found
        try:
            campaign_id = await campaign_named(conn, account_id, args.campaign)
        except UnknownCampaignError:
            sys.stderr.write(f"lead-ledger: no campaign {args.campaign!r} in {args.account!r}\n")
            return 1
        query = ExportQuery(
            account_id=account_id,
            campaign_id=campaign_id,
            as_of=as_of,
            include_archived=args.include_archived,
        )
        exported = await _exported(conn, query, request, workers, args.output)
    if exported is None:
        return 1
    sys.stdout.write(msgspec.json.encode(exported).decode() + "\n")
    return 0


async def _exported(
    conn: Connection,
    query: ExportQuery,
    request: ExportRequest,
    workers: ExportWorkers,
    output: Path,
) -> Exported | None:
    """Write the export to `output`, replacing it whole (a reader never sees half a file);
    None, having said why on stderr, when it cannot be written."""
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="lead-ledger-export-") as scratch:
        with progress_bar(console) as progress:
            done = 0

            def spooled(rows: int) -> None:
                nonlocal done
                done += rows
                progress("export", done, 0)

            progress("export", 0, 0)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                try:
                    written = await write_export_file(
                        conn, query, request, Path(scratch), on_rows=spooled, workers=workers
                    )
                except XlsxLimitError as error:
                    sys.stderr.write(f"lead-ledger: not exported: {error}\n")
                    return None
        try:
            _place(Path(written.path), output)
        except OSError as error:
            sys.stderr.write(f"lead-ledger: cannot write {output}: {error}\n")
            return None
    return Exported(file=str(output), rows=written.rows, bytes=written.size)


def _place(written: Path, output: Path) -> None:
    """A new file or a plain one is replaced whole: copied beside it, then renamed over it
    (atomic on one file system), with the old file's mode (a file kept 0600 stays so). Anything
    else (a symlink, /dev/stdout, a pipe) is written through, as it is not ours to replace."""
    if output.is_symlink() or (output.exists() and not output.is_file()):
        shutil.copyfile(written, output)
        return
    staged = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(written, staged)
        if output.exists():
            shutil.copymode(output, staged)
        staged.replace(output)
    finally:
        staged.unlink(missing_ok=True)


def _unwritable(output: Path) -> str | None:
    """Why `output` cannot be written, known before the export runs (a long one would be
    thrown away at the end)."""
    folder = output.parent
    if output.is_dir():
        return f"{output} is a directory"
    if output.is_symlink() or (output.exists() and not output.is_file()):
        # Written through (_place): what matters is whether it may be written.
        return None if os.access(output, os.W_OK) else "it may not be written"
    if not folder.is_dir():
        return f"{folder} is no directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder}"
    return None
