"""`lead-ledger`: the composition root. It may import every layer; nothing imports it."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import os
import select
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import aclosing
from typing import Final

import asyncpg
import msgspec
import structlog
from aiohttp import web

from lead_ledger import __version__, cli_admin, cli_dnc, cli_erasure, cli_export, cli_projections
from lead_ledger.api.app import create_app
from lead_ledger.ledger import database, embedded, key_store, subject_keys
from lead_ledger.ledger.errors import LedgerError
from lead_ledger.ledger.feed import feed_entry, follow_feed
from lead_ledger.ledger.migrate import migrate
from lead_ledger.ledger.opening import shown_records
from lead_ledger.logs import configure_logging
from lead_ledger.service.inputs import BIGINT_MAX
from lead_ledger.settings import Settings, SettingsError, without_password

log = structlog.get_logger("lead_ledger.cli")
MAX_PORT: Final = 65535
# Seconds a thread holds the GIL while another waits for it (CPython's default: 0.005).
GIL_SWITCH_INTERVAL: Final = 0.0005


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lead-ledger",
        description="An event-sourced ledger of outbound-dialer leads.",
    )
    parser.add_argument("--version", action="version", version=f"lead-ledger {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log at LEDGER_LOG_LEVEL (info) on stderr; other commands than serve log only"
        " warnings and errors without it",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API (migrates the database first)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="port to bind (default 8080)")

    commands.add_parser("migrate", help="apply pending database migrations and exit")
    commands.add_parser(
        "db-url",
        help="print the URL of the database in use (starts the embedded server if needed "
        "and leaves it running: `lead-ledger db stop` stops it)",
    )
    db = commands.add_parser("db", help="the embedded database server")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_stop = db_commands.add_parser(
        "stop",
        help="stop the embedded server of LEDGER_DATA_DIR (one db-url left running, or one a"
        " killed process left behind)",
    )
    db_stop.add_argument(
        "--force", action="store_true", help="stop it even while other processes use it"
    )

    events = commands.add_parser("events", help="read the event log")
    events_commands = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    tail = events_commands.add_parser("tail", help="print the global feed as JSON lines")
    tail.add_argument(
        "--after", type=_at_least(0), default=0, metavar="POSITION", help="start after it"
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument(
        "--limit", type=_at_least(1), default=None, metavar="N", help="stop after N events"
    )
    cli_admin.add_commands(commands)
    cli_projections.add_commands(commands)
    cli_erasure.add_commands(commands)
    cli_dnc.add_commands(commands)
    cli_export.add_commands(commands)
    return parser


def _port(text: str) -> int:
    port = _at_least(1)(text)
    if port > MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text} is not a port: use 1 to {MAX_PORT}")
    return port


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`, and no more than a bigint holds
    (every such number is compared with a bigint column: past it, the database's error)."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than {minimum}")
        if value > BIGINT_MAX:
            raise argparse.ArgumentTypeError(f"{text} is more than {BIGINT_MAX}")
        return value

    return whole


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM ends a command as Ctrl-C does: through Python's exit, so that atexit hands back
    the embedded server (which stops when its last user leaves) rather than leaving it behind."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"lead-ledger: {error}", file=sys.stderr)
        return 2
    # serve logs its requests; the other commands print their results and say only what is
    # wrong, unless asked for more.
    quiet = args.command != "serve" and not args.verbose
    configure_logging(settings.log_format, "warning" if quiet else settings.log_level)
    return _run_reporting(args, settings)


def _run_reporting(args: argparse.Namespace, settings: Settings) -> int:
    """Run the command; what went wrong that a user can cause, said in one line."""
    key_file = settings.data_dir / subject_keys.MASTER_KEY_FILE
    sealing = _opens_sealed_data(args)
    makes_key_file = sealing and not settings.master_key and not key_file.exists()
    key_from_file = sealing and not settings.master_key
    embedded_server = _uses_database(args) and not settings.database_url
    # The data dir is looked at only when the key file or the embedded server will use it.
    code = (_check_data_dir(settings) if key_from_file or embedded_server else 0) or (
        _use_master_key(settings) if sealing else 0
    )
    if code:
        return code
    try:
        code = _run(args, settings)
        sys.stdout.flush()  # here, so that a reader gone by now is seen below
    except LedgerError as error:
        if makes_key_file and isinstance(error, subject_keys.WrongMasterKeyError):
            # Made for this run, and the database's keys are under another: left in place, it
            # would be read again by every later command and serve.
            key_file.unlink(missing_ok=True)
        print(
            f"lead-ledger: {_ledger_error(settings, error, made=makes_key_file)}", file=sys.stderr
        )
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        if isinstance(error, BrokenPipeError) and _reader_gone():
            # `| head -1`: the reader stopped reading, having what it wanted. Nothing failed.
            return 0
        # What a user can cause: a database that does not answer or refuses the login, a port
        # taken. One line naming the cause and the setting, never a traceback.
        print(f"lead-ledger: {_unavailable(settings, error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _reader_gone() -> bool:
    """Whether standard output is a pipe (or socket) whose reader has closed it; if so, it is
    pointed at /dev/null, so that the flush at exit does not fail on it again."""
    try:
        out = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # not a file: the broken pipe was another's
    try:
        poller = select.poll()
        poller.register(out, select.POLLOUT)
        gone = any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError):  # no poll (Windows): a broken pipe is taken for stdout's
        gone = True
    if gone:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out)
        os.close(devnull)
    return gone


def _opens_sealed_data(args: argparse.Namespace) -> bool:
    """Whether the command reads or writes sealed data (or keys, or account secrets), and so
    needs the master key; the others neither load the key nor make its file."""
    match args.command:
        case "migrate" | "db-url" | "db":
            return False
        case "keys":
            return bool(args.keys_command != "new")
        case "projections":
            return bool(args.projections_command != "status")
        case _:
            return True


def _uses_database(args: argparse.Namespace) -> bool:
    """Every command but `keys new`, which only prints a new key."""
    return not (args.command == "keys" and args.keys_command == "new")


def _check_data_dir(settings: Settings) -> int:
    """2 with one line when LEDGER_DATA_DIR, which the key file or the embedded server will use,
    is a file or lies under one (mkdir's own error names the key file or pgdata/ and says only
    "File exists"); else 0, also when it cannot be looked at (the command's error says why)."""
    path = settings.data_dir
    try:
        # The nearest part that exists: the rest is made when first used.
        while not path.exists() and path != path.parent:
            path = path.parent
        if path.is_dir():
            return 0
    except OSError:
        return 0
    print(f"lead-ledger: LEDGER_DATA_DIR={settings.data_dir} is not a directory", file=sys.stderr)
    return 2


def _use_master_key(settings: Settings) -> int:
    """Install the master key; 2 with one line when LEDGER_MASTER_KEY is not one, 1 when the
    key file cannot be read or made."""
    try:
        key_store.use_master_key(
            subject_keys.master_key_from(settings.master_key, settings.data_dir)
        )
    except subject_keys.SubjectKeyError as error:
        print(f"lead-ledger: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = settings.data_dir / subject_keys.MASTER_KEY_FILE
        reason = error.strerror or type(error).__name__
        print(
            f"lead-ledger: cannot read or create the master key file {where}: {reason}"
            " (set LEDGER_MASTER_KEY, or a writable LEDGER_DATA_DIR)",
            file=sys.stderr,
        )
        return 1
    return 0


def _ledger_error(settings: Settings, error: LedgerError, *, made: bool = False) -> str:
    """The error's own words; for a master key that does not open the stored keys, the setting
    or key file it came from, as `serve` names it, rather than the key deep in a command (and
    that a key file made for this run was removed)."""
    if not isinstance(error, subject_keys.WrongMasterKeyError):
        return str(error)
    if settings.master_key:
        return f"LEDGER_MASTER_KEY {subject_keys.WRONG_MASTER_KEY}"
    key_file = settings.data_dir / subject_keys.MASTER_KEY_FILE
    said = f"the key file {key_file} (LEDGER_MASTER_KEY is unset) {subject_keys.WRONG_MASTER_KEY}"
    if made:
        said += "; it was made for this command and is removed: set LEDGER_MASTER_KEY"
    return said


def _unavailable(settings: Settings, error: BaseException) -> str:
    if isinstance(error, asyncpg.UndefinedTableError):
        return "the database has no ledger yet: run `lead-ledger migrate` (serve migrates too)"
    where = (
        f"LEDGER_DATABASE_URL={without_password(settings.database_url)}"
        if settings.database_url
        else f"the embedded server in LEDGER_DATA_DIR={settings.data_dir}"
    )
    if settings.migration_database_url:
        # Migrations and rebuilds connect as the owner: the failing URL may be that one.
        owner = without_password(settings.migration_database_url)
        where += f", LEDGER_MIGRATION_DATABASE_URL={owner}"
    reason = str(error) or type(error).__name__
    return f"cannot use the database ({where}): {reason}"


# Commands that live in modules of their own, each an async runner of (args, settings).
_COMMAND_MODULES: Final[
    dict[str, Callable[[argparse.Namespace, Settings], Coroutine[object, object, int]]]
] = {
    "projections": cli_projections.run,
    "admin": cli_admin.run,
    "demo": cli_admin.run,
    "erase": cli_erasure.run_erase,
    "keys": cli_erasure.run_keys,
    "dnc": cli_dnc.run,
    "export": cli_export.run_export,
}


def _run(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0911 - one per command
    runner = _COMMAND_MODULES.get(args.command)
    if runner is not None:
        return asyncio.run(runner(args, settings))
    match args.command:
        case "serve":
            return _serve(settings, args.host, args.port)
        case "migrate":
            return asyncio.run(_migrate(settings))
        case "db-url":
            print(_database_urls(settings, keep_running=True).service)
            return 0
        case "db":
            return _db_stop(settings, force=args.force)
        case "events":
            return asyncio.run(_tail(settings, args.after, args.follow, args.limit))
        case _:  # argparse's own text, not a union: it admits no other command
            return 2


def _database_urls(settings: Settings, *, keep_running: bool = False) -> database.DatabaseUrls:
    return asyncio.run(database.database_urls(settings, keep_running=keep_running))


def _db_stop(settings: Settings, *, force: bool) -> int:
    if settings.database_url:
        print(
            "lead-ledger: db stop stops the embedded server; LEDGER_DATABASE_URL names a server"
            " of your own, which lead-ledger never starts or stops",
            file=sys.stderr,
        )
        return 2
    try:
        pid = embedded.stop(settings.data_dir, force=force)
    except embedded.InUseError as in_use:
        print(
            f"lead-ledger: the embedded server in {settings.data_dir} is in use by process(es)"
            f" {in_use}; stop them first (it then stops by itself), or use --force",
            file=sys.stderr,
        )
        return 1
    if pid is None:
        print(f"no embedded server is running in {settings.data_dir}")
    else:
        print(f"stopped the embedded server in {settings.data_dir} (pid {pid})")
    return 0


def _serve(settings: Settings, host: str, port: int) -> int:
    # Resolved here, before the database: inside run_app, a name that does not resolve could be
    # the database's host as well as this one.
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a host name"
        print(
            f"lead-ledger: cannot listen on {host}:{port}: {reason} (choose another --host)",
            file=sys.stderr,
        )
        return 1
    urls = _database_urls(settings)
    # Its phone key workers start with the app, importing while the server starts, so the
    # first large upload does not wait; they end with it.
    app = create_app(settings, urls.service, migration_url=urls.migration, warm_key_workers=True)
    _tune_runtime()

    def serving(_banner: str) -> None:
        # run_app calls its `print` once every socket is bound: only then is the server serving.
        log.info("serving", host=host, port=port)

    # run_app turns SIGINT/SIGTERM into a graceful shutdown: in-flight requests finish and the
    # cleanup contexts (pool, worker leases) run before the process exits.
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            print=serving,
            shutdown_timeout=settings.shutdown_seconds,
            access_log=None,
            loop=_event_loop(),
        )
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        # asyncio's message repeats the address; the errno's own words say it plainly.
        reason = os.strerror(error.errno) if error.errno else str(error)
        print(
            f"lead-ledger: cannot listen on {host}:{port}: {reason.lower()} (choose another"
            " with --port, or --host)",
            file=sys.stderr,
        )
        return 1
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux and macOS): asyncpg and aiohttp spend most of their
    time in the loop's socket paths, which it runs in C. The standard loop elsewhere."""
    try:
        import uvloop  # noqa: PLC0415 - optional, platform-dependent
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _tune_runtime() -> None:
    """Fewer, cheaper cyclic collections, and a short GIL switch interval.

    Collections pause every request in flight: objects alive at start (modules, the app) are
    frozen out of collection, and the youngest generation is collected after 20,000
    allocations instead of 700: a request allocates thousands of short-lived objects that
    reference counting frees anyway.

    A large upload seals its next chunk on a thread while the event loop waits for the
    server's reply to the last statement. When the reply came, the loop waited for the GIL
    until the sealing thread was made to drop it: up to CPython's switch interval, 5 ms, on
    each of a job's ~140 statements, with the server idle meanwhile (a SAVEPOINT's round trip
    took ~4.4 ms in a 50,000-row upload job, ~1.3 ms at 0.5 ms; docs/performance.md). With
    one thread, as under request load, the interval changes nothing.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


async def _migrate(settings: Settings) -> int:
    conn = await database.connect((await database.database_urls(settings)).migration)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


async def _tail(settings: Settings, after: int, follow: bool, limit: int | None) -> int:
    conn = await database.connect((await database.database_urls(settings)).service)
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    count = 0
    try:
        # As every command that opens the database: another key would show every subject as
        # erased.
        await key_store.check_master_key(conn, key_store.master_key())
        # aclosing: stop listening before the connection closes, also on --limit's break.
        async with aclosing(follow_feed(conn, after=after, follow=follow)) as feed:
            async for event in feed:
                shown = (await shown_records(conn, [event]))[0]
                out.write(encoder.encode(feed_entry(shown)) + b"\n")
                out.flush()
                count += 1
                if limit is not None and count >= limit:
                    break
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
