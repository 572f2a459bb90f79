"""`lead-ledger dnc import` and `lead-ledger dnc check`: an account's do-not-call registry from
the command line (docs/dnc.md)."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Final

import msgspec
from rich.console import Console

from lead_ledger.cli_account import account_connection, cli_context
from lead_ledger.cli_projections import progress_bar
from lead_ledger.service import dnc, reads
from lead_ledger.settings import Settings

BATCH: Final = 10_000  # entries per transaction: the registry's batch limit
SHOWN_FAULTS: Final = 5


class Imported(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did: entries added, numbers already in the scope (left as they were)."""

    added: int
    already_listed: int


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
    if text is None:
        return None
    last = date.fromisoformat(text)  # ValueError for the caller
    return datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """0 done, 1 refused (no such account or campaign, a file that cannot be read), 2 invalid
    input (nothing imported)."""
    if args.dnc_command == "check":
        return await _check(args, settings)
    return await _import(args, settings, Console(stderr=True))


async def _import(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    try:
        expires_at = _expiry(args.expires)
    except ValueError:
        sys.stderr.write(f"lead-ledger: --expires {args.expires!r} is not YYYY-MM-DD\n")
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
    added = 0
    async with account_connection(settings, args.account) as found:
        if found is None:
            return 1
        conn, account_id = found
        with progress_bar(console) as progress:
            progress("import", 0, len(entries))
            for start in range(0, len(entries), BATCH):
                batch = entries[start : start + BATCH]
                try:
                    made = await dnc.add_entries(conn, ctx, account_id, batch, skip_listed=True)
                except dnc.DncError as error:
                    sys.stderr.write(f"lead-ledger: {error.message}\n")
                    return 1
                added += len(made)
                progress("import", start + len(batch), len(entries))
    result = Imported(added=added, already_listed=len(entries) - added)
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
    return 0


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
