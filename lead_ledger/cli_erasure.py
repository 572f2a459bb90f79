"""`lead-ledger erase` and `lead-ledger keys ...`: erasure and the master key from the CLI
(docs/erasure.md)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Final, TextIO

import asyncpg
import msgspec

from lead_ledger.cli_account import account_connection, cli_context
from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import database_urls, open_database
from lead_ledger.service.erasures import Erasure, ErasurePreview, ErasureRequest, erase, preview
from lead_ledger.service.inputs import BIGINT_MAX, decimal
from lead_ledger.settings import Settings

# Other sessions on the database while keys are rotated: a server that kept the old master key
# in memory would write keys no one can open after the rotation.
COUNT_OTHER_SESSIONS: Final = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""
NEW_KEY_SUFFIX: Final = ".new"
# Taken first in the rotation's transaction: a server that starts meanwhile checks its master
# key against these tables (key_store.check_master_key), so its check waits for the rotation
# and then sees the keys re-wrapped, and refuses the old key. The sessions are counted after
# it: a server that checked before the lock is still connected, and counted.
LOCK_KEYS: Final = (
    "SET LOCAL lock_timeout = '10s';"
    " LOCK TABLE subject_keys, account_secrets, master_key_canary IN ACCESS EXCLUSIVE MODE"
)


class _OtherSessions(Exception):  # noqa: N818 - a refusal, reported as one line
    def __init__(self, count: int | None) -> None:
        super().__init__("other sessions" if count is None else f"{count} other session(s)")


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `erase` and `keys` to the main parser's subcommands."""
    parser = subparsers.add_parser(
        "erase", help="erase a person: every subject a phone, lead id or user_data names"
    )
    parser.add_argument("--account", required=True, help="the account's name or id")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--phone", help="a phone number, in any spelling")
    what.add_argument("--lead-id", type=_lead_id, help="a lead id")
    what.add_argument("--user-data", help="a user_data value")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the erasure would take now, erase nothing",
    )

    keys = subparsers.add_parser("keys", help="the master key that opens every subject key")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    actions.add_parser("new", help="print a fresh master key (base64) for LEDGER_MASTER_KEY")
    rotate = actions.add_parser(
        "rotate",
        help="re-wrap every subject key under a new master key (no event changes); stop every"
        " server first",
    )
    rotate.add_argument(
        "--new-key-file",
        type=Path,
        metavar="PATH",
        help="the new key (base64); without it, a fresh key replaces the data dir's key file",
    )


def _lead_id(text: str) -> int:
    """An argparse type: a lead id as the API takes one (1 to BIGINT_MAX), so that a number no
    lead can have exits 2 rather than recording an erasure of nothing."""
    value = decimal(text, minimum=1)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a lead id: use 1 to {BIGINT_MAX}")
    return value


async def run_erase(
    args: argparse.Namespace, settings: Settings, *, stdin: TextIO = sys.stdin
) -> int:
    """0 erased (or, with --dry-run, shown), 1 refused (no such account), 2 invalid or not
    confirmed."""
    request = ErasureRequest(phone=args.phone, lead_id=args.lead_id, user_data=args.user_data)
    try:
        by, value = request.given()
    except ValueError as error:
        sys.stderr.write(f"lead-ledger: {error}\n")
        return 2
    if not (args.yes or args.dry_run or stdin.isatty()):
        # Nobody to ask: refused before the database is touched.
        sys.stderr.write("lead-ledger: not erased (confirm, or pass --yes)\n")
        return 2
    async with account_connection(settings, args.account) as found:
        if found is None:
            return 1
        conn, account_id = found
        would = await preview(conn, account_id, request)
        if args.dry_run:
            _print(would)
            return 0
        if not args.yes and not _confirmed(args.account, (by, value), would, stdin):
            sys.stderr.write("lead-ledger: not erased (confirm, or pass --yes)\n")
            return 2
        erasure = await erase(conn, cli_context(), account_id, request)
    _print(erasure)
    return 0


def _print(result: Erasure | ErasurePreview) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(result), indent=2).decode() + "\n")


def _confirmed(account: str, asked: tuple[str, str], would: ErasurePreview, stdin: TextIO) -> bool:
    """Ask the person at the terminal (run_erase has seen that there is one)."""
    by, value = asked
    leads = ", ".join(map(str, would.lead_ids)) or "none"
    sys.stderr.write(
        f"{by} {value!r} names {would.subjects} subject(s) of account {account!r} now, in every"
        f" campaign: leads {leads}; {len(would.rejected_rows)} rejected job row(s); the rest"
        " refused rows. Erase them all? This cannot be undone. Type 'yes': "
    )
    sys.stderr.flush()
    return stdin.readline().strip().lower() == "yes"


async def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    if args.keys_command == "new":
        sys.stdout.write(subject_keys.new_master_key_text() + "\n")
        return 0
    return await _rotate(settings, args.new_key_file)


async def _rotate(settings: Settings, new_key_file: Path | None) -> int:
    key_file = settings.data_dir / subject_keys.MASTER_KEY_FILE
    from_file = not settings.master_key
    if new_key_file is None and not from_file:
        sys.stderr.write(
            "lead-ledger: LEDGER_MASTER_KEY is set: give the new key with --new-key-file"
            " (make one with `lead-ledger keys new`)\n"
        )
        return 2
    staged = None
    if new_key_file is None:
        # Written beside the key file just before the rotation commits: if anything stops
        # between the commit and the rename below, the new key is still there to be renamed by
        # hand. So it must exist only while a rotation runs, never after a refusal.
        staged = key_file.with_name(key_file.name + NEW_KEY_SUFFIX)
        if staged.exists():
            sys.stderr.write(
                f"lead-ledger: {staged} exists: an earlier rotation did not finish. If the"
                f" database no longer opens with {key_file.name}, that file holds its key:"
                f" move it over {key_file.name}; else delete it, then rotate again\n"
            )
            return 1
        new_text = subject_keys.new_master_key_text()
        source = str(staged)
    else:
        read = _read_key_file(new_key_file)
        if read is None:
            return 2
        new_text, source = read, str(new_key_file)
    new_master = subject_keys.parse_master_key(new_text, source=source)
    old_master = key_store.master_key()
    urls = await database_urls(settings)
    pool = await open_database(urls.service, migration_url=urls.migration, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            try:
                count = await _rotated(conn, old_master, new_master, staged, new_text)
            except _OtherSessions as others:
                sys.stderr.write(
                    f"lead-ledger: {others} use the database: stop every"
                    " `lead-ledger serve` first (a server keeps the master key it started with)\n"
                )
                return 1
    finally:
        await pool.close()
    if from_file:
        _write_key(key_file, new_text.strip(), replace=True)
        if staged is not None:
            staged.unlink()
        where = f"the key file {key_file} now holds the new key"
    else:
        where = "set LEDGER_MASTER_KEY to the new key before the next start"
    sys.stdout.write(f"re-wrapped {count} key(s) under the new master key; {where}\n")
    return 0


async def _rotated(
    conn: Connection, old: bytes, new: bytes, staged: Path | None, new_text: str
) -> int:
    """Re-wrap every key in one transaction, the new key staged beside the key file first; the
    staged file goes again whenever the rotation fails before its commit is sent (nothing was
    committed: a half-written file, a BEGIN or a statement that failed, a connection lost and
    its rollback failing too), and stays when the commit itself may have happened."""
    transaction = conn.transaction()
    try:
        if staged is not None:
            _write_key(staged, new_text.strip())
        await transaction.start()
        await _alone(conn)
        count = await key_store.rotate(conn, old, new)
    except BaseException:
        if staged is not None:
            _unstage(staged)
        with contextlib.suppress(Exception):  # the error raised is the one that matters
            await transaction.rollback()
        raise
    await transaction.commit()
    return count


async def _alone(conn: Connection) -> None:
    """Lock the key tables, then make sure no other session uses the database (_OtherSessions
    if one does, or holds the tables for 10 s)."""
    try:
        await conn.execute(LOCK_KEYS)
    except asyncpg.LockNotAvailableError:  # the transaction is aborted: nothing more to ask
        raise _OtherSessions(None) from None
    others: int = await conn.fetchval(COUNT_OTHER_SESSIONS)
    if others:
        raise _OtherSessions(others)


def _read_key_file(path: Path) -> str | None:
    """The text of --new-key-file; None, with one line saying why, when it cannot be read or
    holds no master key: either is the argument's fault, told before the database is used."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not text"
        sys.stderr.write(f"lead-ledger: cannot read --new-key-file {path}: {reason}\n")
        return None
    try:
        subject_keys.parse_master_key(text, source=f"--new-key-file {path}")
    except subject_keys.SubjectKeyError as error:
        sys.stderr.write(f"lead-ledger: {error}\n")
        return None
    return text


def _unstage(staged: Path) -> None:
    staged.unlink(missing_ok=True)


def _write_key(path: Path, text: str, *, replace: bool = False) -> None:
    """The key, readable by its owner alone; replaced atomically (a rename) when asked."""
    target = path.with_name(path.name + ".tmp") if replace else path
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")
        out.flush()
        os.fsync(out.fileno())
    if replace:
        target.replace(path)
