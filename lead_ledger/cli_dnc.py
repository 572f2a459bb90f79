"""`lead-ledger dnc import` and `lead-ledger dnc check`: an account's do-not-call registry from
the command line (docs/dnc.md)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import msgspec
from rich.console import Console

from lead_ledger.cli_account import account_connection, cli_context
from lead_ledger.cli_projections import progress_bar
from lead_ledger.ledger.connection import Connection
from lead_ledger.service import dnc, reads
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.inputs import end_of_day
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.phone_keys import KeysAhead
from lead_ledger.service.writer import Context, account_digest
from lead_ledger.settings import Settings

BATCH: Final = 10_000  # entries per transaction: the registry's batch limit
SHOWN_FAULTS: Final = 5


# Of an import's numbers already in its scope, those whose entry does not block now (Inactive,
# or expired): the import leaves them so, and says how many.
COUNT_NOT_BLOCKING: Final = """
SELECT count(*) FROM dnc
WHERE account_id = $1 AND campaign_id IS NOT DISTINCT FROM $2 AND number = ANY($3::text[])
  AND NOT (status = 'Active' AND (expires_at IS NULL OR expires_at > now()))
"""


class Imported(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did: entries added, numbers already in the scope (left as they were), and
    of those, the ones whose entry does not block (Inactive or expired)."""

    added: int
    already_listed: int
    not_blocking: int


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `dnc import` and `dnc check` to the main parser's subcommands."""
    parser = subparsers.add_parser("dnc", help="an account's do-not-call registry")
    actions = parser.add_subparsers(dest="dnc_command", required=True, metavar="ACTION")
    imports = actions.add_parser(
        "import",
        help="add the numbers of a csv file (the first column of each row; a header is optional)",
    )
    imports.add_argument("file", type=Path, help="the csv file")
    imports.add_argument("--account", required=True, help="the account's name or id")
    imports.add_argument("--campaign", help="block in this campaign only (default: every one)")
    imports.add_argument(
        "--expires", metavar="YYYY-MM-DD", help="the last day the entries block (default: never)"
    )
    check = actions.add_parser("check", help="whether a number is blocked, and by which entries")
    check.add_argument("phone", help="the number, in any spelling")
    check.add_argument("--account", required=True, help="the account's name or id")
    check.add_argument("--campaign", help="also this campaign's entries (default: account-wide)")


def _numbers(path: Path) -> Iterator[tuple[int, str]]:
    """(line, number) of each row with a first cell; a first row that is no number is a
    header."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            cell = row[0].strip() if row else ""
            if not cell or (line == 1 and not dnc.valid_number(cell)):
                continue
            yield line, cell


def _expiry(text: str | None) -> datetime | None:
    """--expires as the end of its day; ValueError saying why it cannot be taken (a day that
    has passed would add entries that never block)."""
    if text is None:
        return None
    try:
        expires_at = end_of_day(date.fromisoformat(text))
    except ValueError:
        raise ValueError(f"--expires {text!r} is not YYYY-MM-DD") from None
    if expires_at <= datetime.now(UTC):
        raise ValueError(f"--expires {text} has passed: the entries would never block")
    return expires_at


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """0 done, 1 refused (no such account or campaign, a file that cannot be read), 2 invalid
    input (nothing imported)."""
    if args.dnc_command == "check":
        return await _check(args, settings)
    return await _import(args, settings, Console(stderr=True))


async def _import(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    try:
        expires_at = _expiry(args.expires)
    except ValueError as error:
        sys.stderr.write(f"lead-ledger: {error}\n")
        return 2
    try:
        numbers = list(_numbers(args.file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        sys.stderr.write(f"lead-ledger: cannot read {args.file}: {error}\n")
        return 1
    faults = [(line, number) for line, number in numbers if not dnc.valid_number(number)]
    if faults:
        shown = ", ".join(f"line {line}: {number!r}" for line, number in faults[:SHOWN_FAULTS])
        more = f" and {len(faults) - SHOWN_FAULTS} more" if len(faults) > SHOWN_FAULTS else ""
        sys.stderr.write(f"lead-ledger: not phone numbers ({shown}{more}); nothing imported\n")
        return 2
    entries = [
        dnc.NewDncEntry(phone=number, campaign=args.campaign, expires_at=expires_at)
        for _, number in numbers
    ]
    ctx = cli_context()
    listed: list[str] = []  # the keys of numbers the import left out, as listed already
    async with account_connection(settings, args.account) as found:
        if found is None:
            return 1
        conn, account_id = found
        with progress_bar(console) as progress:
            progress("import", 0, len(entries))
            try:
                added = await import_entries(
                    conn,
                    ctx,
                    account_id,
                    entries,
                    lambda done: progress("import", done, len(entries)),
                    on_listed=listed.extend,
                )
            except dnc.DncError as error:
                sys.stderr.write(f"lead-ledger: {error.message}\n")
                return 1
        idle = await _not_blocking(conn, account_id, args.campaign, listed) if listed else 0
    if idle:
        sys.stderr.write(
            f"lead-ledger: {idle} number(s) of the file were listed already with an entry that"
            " does not block (Inactive or expired), left as it is: make it Active or give it"
            " a new expiry with PATCH /v1/dnc/{id} (docs/dnc.md)\n"
        )
    result = Imported(added=added, already_listed=len(entries) - added, not_blocking=idle)
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
    return 0


async def _not_blocking(
    conn: Connection, account_id: int, campaign: str | None, keys: Sequence[str]
) -> int:
    """How many of these numbers (dedupe keys) have an entry in the import's scope that does
    not block."""
    campaign_id = None
    if campaign is not None:
        campaign_id = (await dnc.campaigns_by_name(conn, account_id))[campaign]
    count: int = await conn.fetchval(COUNT_NOT_BLOCKING, account_id, campaign_id, sorted(set(keys)))
    return count


async def import_entries(
    conn: Connection,
    ctx: Context,
    account_id: int,
    entries: Sequence[dnc.NewDncEntry],
    progress: Callable[[int], None] | None = None,
    *,
    batch_size: int = BATCH,
    on_listed: Callable[[list[str]], None] | None = None,
) -> int:
    """Add entries `batch_size` at a time, each batch in its own transaction, leaving out
    numbers already in their scope; the number added. `progress` hears how many entries are
    done, `on_listed` the keys of those left out.

    A pipeline, so that the server and Python work at once: the numbers' keys (phonenumbers,
    ~15 µs a number) are computed in worker processes, and each batch is prepared (its events
    built and sealed, ~30 µs an entry) on a thread while the batch before it is written.
    """
    campaigns = await dnc.campaigns_by_name(conn, account_id)
    region = await default_region(conn, account_id)
    digest = await account_digest(conn, account_id)
    loop = asyncio.get_running_loop()
    batches = [entries[start : start + batch_size] for start in range(0, len(entries), batch_size)]

    async def prepare(batch: Sequence[dnc.NewDncEntry]) -> asyncio.Future[dnc.PreparedEntries]:
        """Start preparing a batch on a thread: its keys and ids first (the ids from the
        connection, so before the write that will use it)."""
        batch_keys = [k[0] for k in await keys.take(len(batch))]
        scoped = dnc.scope_entries(batch, campaigns, region, batch_keys)
        entry_ids = await dnc.draw_entry_ids(conn, len(batch))
        return loop.run_in_executor(
            None, dnc.prepare_entries, ctx, account_id, batch, scoped, digest, entry_ids
        )

    added = done = 0
    with KeyWorkers() as workers:
        keys = KeysAhead([[e.phone] for e in entries], region, streaming=True, workers=workers)
        preparing = await prepare(batches[0]) if batches else None
        try:
            for index, batch in enumerate(batches):
                if preparing is None:
                    raise RuntimeError("a batch was not prepared")
                prepared = await preparing
                preparing = None
                if index + 1 < len(batches):
                    preparing = await prepare(batches[index + 1])
                made = await dnc.write_prepared(conn, ctx, prepared, skip_listed=True)
                if on_listed is not None and len(made) < len(batch):
                    on_listed(_left_out(prepared, made))
                added += len(made)
                done += len(batch)
                if progress is not None:
                    progress(done)
        finally:
            keys.cancel()
            if preparing is not None:
                preparing.cancel()
    return added


def _left_out(prepared: dnc.PreparedEntries, made: list[int]) -> list[str]:
    """The keys of a batch's entries that were not added (listed already)."""
    kept = set(made)
    return [
        key
        for (key, _), entry_id in zip(prepared.scoped, prepared.entry_ids, strict=True)
        if entry_id not in kept
    ]


async def _check(args: argparse.Namespace, settings: Settings) -> int:
    if not dnc.valid_number(args.phone):
        sys.stderr.write(f"lead-ledger: {args.phone!r} is not a phone number\n")
        return 2
    async with account_connection(settings, args.account) as found:
        if found is None:
            return 1
        conn, account_id = found
        try:
            campaign_id = await reads.campaign_named(conn, account_id, args.campaign)
        except reads.UnknownCampaignError:
            sys.stderr.write(f"lead-ledger: no campaign {args.campaign!r}\n")
            return 1
        answer = await dnc.check(conn, account_id, args.phone, campaign_id)
    encoded = msgspec.json.format(msgspec.json.encode(answer), indent=2).decode()
    sys.stdout.write(encoded + "\n")
    return 0
