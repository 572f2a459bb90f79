"""`lead-ledger`: the composition root. It may import every layer; nothing imports it."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence
from contextlib import aclosing

import msgspec
import structlog
from aiohttp import web

from lead_ledger import __version__, cli_admin, cli_projections
from lead_ledger.api.app import create_app
from lead_ledger.ledger import database
from lead_ledger.ledger.errors import LedgerError
from lead_ledger.ledger.feed import feed_entry, follow_feed
from lead_ledger.ledger.migrate import migrate
from lead_ledger.logs import configure_logging
from lead_ledger.settings import Settings, SettingsError

log = structlog.get_logger("lead_ledger.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lead-ledger",
        description="An event-sourced ledger of outbound-dialer leads.",
    )
    parser.add_argument("--version", action="version", version=f"lead-ledger {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API (migrates the database first)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")

    commands.add_parser("migrate", help="apply pending database migrations and exit")
    commands.add_parser(
        "db-url",
        help="print the URL of the database in use (starts the embedded server if needed "
        "and leaves it running)",
    )

    events = commands.add_parser("events", help="read the event log")
    events_commands = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    tail = events_commands.add_parser("tail", help="print the global feed as JSON lines")
    tail.add_argument("--after", type=int, default=0, metavar="POSITION", help="start after it")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument("--limit", type=int, default=None, help="stop after this many events")
    cli_admin.add_commands(commands)
    cli_projections.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"lead-ledger: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        return _run(args, settings)
    except LedgerError as error:
        print(f"lead-ledger: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0911 - one per command
    match args.command:
        case "serve":
            return _serve(settings, args.host, args.port)
        case "migrate":
            return asyncio.run(_migrate(settings))
        case "db-url":
            print(_database_urls(settings, keep_running=True).service)
            return 0
        case "events":
            return asyncio.run(_tail(settings, args.after, args.follow, args.limit))
        case "projections":
            return asyncio.run(cli_projections.run(args, settings))
        case "admin" | "demo":
            return asyncio.run(cli_admin.run(args, settings))
        case _:  # argparse's own text, not a union: it admits no other command
            return 2


def _database_urls(settings: Settings, *, keep_running: bool = False) -> database.DatabaseUrls:
    return asyncio.run(database.database_urls(settings, keep_running=keep_running))


def _serve(settings: Settings, host: str, port: int) -> int:
    urls = _database_urls(settings)
    # Its phone key workers start with the app, importing while the server starts, so the
    # first large upload does not wait; they end with it.
    app = create_app(settings, urls.service, migration_url=urls.migration, warm_key_workers=True)
    _tune_gc()
    log.info("serving", host=host, port=port)
    # run_app turns SIGINT/SIGTERM into a graceful shutdown: in-flight requests finish and the
    # cleanup contexts (pool, worker leases) run before the process exits.
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        shutdown_timeout=30,
        access_log=None,
        loop=_event_loop(),
    )
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


def _tune_gc() -> None:
    """Fewer, cheaper cyclic collections: they pause every request in flight.

    Objects alive at start (modules, the app) are frozen out of collection, and the youngest
    generation is collected after 20,000 allocations instead of 700: a request allocates
    thousands of short-lived objects that reference counting frees anyway.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


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
        # aclosing: stop listening before the connection closes, also on --limit's break.
        async with aclosing(follow_feed(conn, after=after, follow=follow)) as feed:
            async for event in feed:
                out.write(encoder.encode(feed_entry(event)) + b"\n")
                out.flush()
                count += 1
                if limit is not None and count >= limit:
                    break
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
