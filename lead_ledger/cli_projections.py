"""`lead-ledger projections status|rebuild|verify`: the read models, from the command line."""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Final

import asyncpg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from lead_ledger.ledger.database import database_urls, open_database
from lead_ledger.projections import rebuild as projections
from lead_ledger.settings import Settings

# Inline projections commit with their events; say so, so that "lag 0" is not read as a claim
# that a rebuild ran recently.
LAG_NOTE = (
    "Projections are inline: they commit in the same transaction as their events, so the live "
    "tables are never behind the log (lag 0). The checkpoint is the head of the log when the "
    "last rebuild swapped its tables in; head is the newest position in the log now."
)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `projections` and its actions to the main parser's subcommands."""
    parser = subparsers.add_parser("projections", help="inspect, rebuild or verify read models")
    actions = parser.add_subparsers(dest="projections_command", required=True, metavar="ACTION")
    actions.add_parser("status", help="rows, last rebuild and log head per projection")
    for name, text in (
        ("rebuild", "replay the log into shadow tables and swap them in (service keeps running)"),
        (
            "verify",
            (
                "replay into shadow tables and compare with the live ones; exit 1 if they"
                " differ, 3 if another rebuild or verify is running"
            ),
        ),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("names", nargs="*", metavar="NAME", help="projections (default all)")


class _Output(Console):
    """The command's output, whose closed pipe (`| head -1`) ends the command as any other
    command's: quietly, in lead_ledger.cli (rich's own answer is exit 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


async def run(args: argparse.Namespace, settings: Settings) -> int:
    # As the owner: a rebuild or verify creates shadow tables and swaps them in.
    url = (await database_urls(settings)).migration
    pool = await open_database(url, min_size=1, max_size=2, check_role=False)
    console = _Output(soft_wrap=True)  # summary lines stay whole in logs and pipes
    try:
        match args.projections_command:
            case "status":
                return await _status(pool, console)
            case "rebuild":
                return await _rebuild(pool, console, args.names)
            case "verify":
                return await _verify(pool, console, args.names)
            case _:  # argparse's own text, not a union: it admits no other command
                return 2
    except projections.RebuildError as error:
        Console(stderr=True, soft_wrap=True).print(
            f"lead-ledger: {error}", style="red", highlight=False
        )
        return _exit_status(error)
    except asyncpg.InsufficientPrivilegeError as error:
        # Without LEDGER_MIGRATION_DATABASE_URL the service's URL is used, whose role may not
        # create the shadow tables: name the fix, as `migrate` and `serve` do.
        role = await pool.fetchval("SELECT current_user")
        action = args.projections_command
        Console(stderr=True, soft_wrap=True).print(
            f"lead-ledger: role {role} may not {action} projections ({error}): run"
            f" `lead-ledger projections {action}` with LEDGER_MIGRATION_DATABASE_URL set to the"
            " owner's URL (docs/operations.md, 'Database roles and privileges')",
            style="red",
            highlight=False,
            markup=False,
        )
        return 1
    finally:
        await pool.close()


# Exit statuses beyond 0 (done; live equals rebuilt) and 1 (live and rebuilt differ, or the
# command failed): a script or a cron job can tell a wrong command and a busy database, which
# a later run may get past, from a difference.
EXIT_USAGE: Final = 2
EXIT_BUSY: Final = 3


def _exit_status(error: projections.RebuildError) -> int:
    if isinstance(error, projections.UnknownProjectionError):
        return EXIT_USAGE
    if isinstance(error, projections.RebuildBusyError):
        return EXIT_BUSY
    return 1


class RateColumn(ProgressColumn):
    """Like rich's TransferSpeedColumn, in what the phase counts (its task's `unit` field):
    events, tables, indexes; nothing for a phase that counts no unit."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit")
        shown = f"{speed:,.0f} {unit}/s" if speed and unit else ""
        return Text(shown, style="progress.data.speed")


# Each phase of a rebuild: its label, and what its counts count.
_PHASES: Final = {
    "sql": ("apply lead streams (SQL)", "events"),
    "read": ("apply events", "events"),
    "copy": ("copy tables", "tables"),
    "index": ("build indexes", "indexes"),
    "swap": ("catch up and swap", None),
    "export": ("export leads", "leads"),
}


@contextmanager
def progress_bar(console: Console) -> Iterator[projections.Progress]:
    """A rich progress bar fed by rebuild's (phase, done, total) callback; silent off a TTY."""
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def finish_all() -> None:
        for task_id in tasks.values():
            bar.update(task_id, completed=bar.tasks[task_id].total)

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            finish_all()  # earlier phases are over
            label, unit = _PHASES.get(phase, (phase, None))
            tasks[phase] = bar.add_task(label, total=total or None, unit=unit)
        bar.update(tasks[phase], completed=done, total=total or None)

    with bar:
        yield update
        finish_all()  # the last phase reports its start only: it is over when the rebuild is


async def _rebuild(pool: asyncpg.Pool, console: Console, names: list[str]) -> int:
    with progress_bar(console) as progress:
        report = await projections.rebuild(pool, names or None, progress=progress)
    rows = ", ".join(f"{name}={count:,}" for name, count in report.rows.items())
    console.print(
        f"rebuilt {len(report.names)} projection(s): {report.events + report.caught_up:,} events "
        f"in {report.seconds:.2f} s ({report.events_per_second:,.0f} events/s), "
        f"{report.caught_up:,} of them caught up during the rebuild; position "
        f"{report.position:,}; rows {rows}",
        highlight=False,
    )
    return 0


async def _verify(pool: asyncpg.Pool, console: Console, names: list[str]) -> int:
    with progress_bar(console) as progress:
        report = await projections.verify(pool, names or None, progress=progress)
    for check in report.tables:
        if check.ok:
            console.print(f"{check.name}: ok", highlight=False)
            continue
        console.print(
            f"{check.name}: DIFFERENT ({check.only_live:,} row(s) only live, "
            f"{check.only_rebuilt:,} only rebuilt)",
            style="red",
            highlight=False,
        )
        for diff in check.differences:
            where = "live only" if diff.side == "live" else "rebuilt only"
            console.print(f"  {check.table} key {diff.key}: {where} ({diff.digest})")
        for key, columns in check.changed_columns.items():
            console.print(
                f"  {check.table} key {key}: columns that differ: {', '.join(columns) or '-'}",
                highlight=False,
            )
    verdict = "live equals rebuilt" if report.ok else "live differs from rebuilt"
    console.print(
        f"verified {len(report.tables)} projection(s) against {report.events:,} events "
        f"in {report.seconds:.2f} s: {verdict}",
        highlight=False,
    )
    return 0 if report.ok else 1


async def _status(pool: asyncpg.Pool, console: Console) -> int:
    statuses = await projections.status(pool)
    table = Table("projection", "rows", "checkpoint", "rebuilt at (UTC)", "head", "lag")
    for s in statuses:
        table.add_row(
            s.name,
            f"{s.rows:,}",
            "-" if s.checkpoint_position is None else f"{s.checkpoint_position:,}",
            "never"
            if s.rebuilt_at is None
            else f"{s.rebuilt_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            f"{s.head:,}",
            str(s.lag),
        )
    console.print(table)
    console.print(LAG_NOTE, highlight=False)
    if statuses and statuses[0].rebuilding:
        console.print("A rebuild or verify is running now (it writes shadow tables only).")
    return 0
