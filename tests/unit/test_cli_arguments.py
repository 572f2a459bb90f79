"""The command line's own checks, in process: arguments, the one-line database errors, SIGTERM.
(tests/e2e/test_cli_errors.py runs the same through the installed command.)"""

from __future__ import annotations

import argparse
import shlex
import signal
from pathlib import Path

import asyncpg
import pytest

from lead_ledger import cli, cli_admin
from lead_ledger.settings import Settings, without_password


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "65536"], "65536 is not a port: use 1 to 65535"),
        (["serve", "--port", "-1"], "-1 is less than 1"),
        (["events", "tail", "--limit", "0"], "0 is less than 1"),
        (["events", "tail", "--after", "soon"], "'soon' is not a whole number"),
        *(
            (
                ["demo", "--base-url", url],
                (
                    f"argument --base-url: {url!r} is not a server URL: use http:// or"
                    " https://, a host, an optional :port and path (http://127.0.0.1:8080)"
                ),
            )
            for url in ("not a url", "127.0.0.1:8080", "ftp://h", "http://h:99999", "http://h/?a=1")
        ),
        *(
            (
                ["erase", "--account", "demo", "--lead-id", lead_id, "--yes"],
                f"argument --lead-id: {lead_id!r} is not a lead id: use 1 to 9223372036854775807",
            )
            for lead_id in ("0", "-5", "99999999999999999999", "9223372036854775808", "\u0663")
        ),
    ],
)
def test_impossible_arguments_stop_the_parser(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse exits 2 with the rule the value broke."""
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(message)


def test_good_arguments_are_numbers() -> None:
    """Ports, bounds and lead ids arrive as ints; --verbose and db stop --force are flags."""
    args = cli.build_parser().parse_args(["--verbose", "serve", "--port", "8081"])
    assert (args.verbose, args.port) == (True, 8081)
    tail = cli.build_parser().parse_args(["events", "tail", "--after", "0", "--limit", "1"])
    assert (tail.after, tail.limit) == (0, 1)
    stop = cli.build_parser().parse_args(["db", "stop", "--force"])
    assert (stop.command, stop.db_command, stop.force) == ("db", "stop", True)
    erase = cli.build_parser().parse_args(["erase", "--account", "a", "--lead-id", "007"])
    assert erase.lead_id == 7
    last = ["erase", "--account", "a", "--lead-id", "9223372036854775807"]
    assert cli.build_parser().parse_args(last).lead_id == 2**63 - 1


def test_at_least_names_its_bound() -> None:
    """The argparse type refuses below its minimum and text that is no number."""
    at_least_two = cli._at_least(2)
    assert at_least_two("2") == 2
    with pytest.raises(argparse.ArgumentTypeError, match="1 is less than 2"):
        at_least_two("1")


def test_database_errors_name_the_setting_without_its_password(tmp_path: Path) -> None:
    """The configured URLs are shown with their passwords hidden (the owner's too: migrations
    and rebuilds use it); without one, the data dir."""
    configured = Settings(database_url="postgresql://ledger:s3cret@db.example:5432/ledger")
    line = cli._unavailable(configured, ConnectionRefusedError(111, "Connect call failed"))
    assert line == (
        "cannot use the database (LEDGER_DATABASE_URL=postgresql://ledger:***@db.example:5432"
        "/ledger): [Errno 111] Connect call failed"
    )
    embedded = Settings(data_dir=tmp_path)
    assert cli._unavailable(embedded, OSError("gone")) == (
        f"cannot use the database (the embedded server in LEDGER_DATA_DIR={tmp_path}): gone"
    )
    assert without_password("postgresql://ledger@db/x") == "postgresql://ledger@db/x"
    with_owner = Settings(
        database_url="postgresql://app@db/ledger",
        migration_database_url="postgresql://owner:pw@db/ledger",
    )
    assert cli._unavailable(with_owner, OSError("gone")) == (
        "cannot use the database (LEDGER_DATABASE_URL=postgresql://app@db/ledger,"
        " LEDGER_MIGRATION_DATABASE_URL=postgresql://owner:***@db/ledger): gone"
    )
    unmigrated = cli._unavailable(configured, asyncpg.UndefinedTableError("no events"))
    assert unmigrated.startswith("the database has no ledger yet: run `lead-ledger migrate`")


def test_sigterm_becomes_an_exit() -> None:
    """The handler turns SIGTERM into SystemExit(143), which runs atexit."""
    with pytest.raises(SystemExit) as exited:
        cli._terminate(signal.SIGTERM, None)
    assert exited.value.code == 128 + signal.SIGTERM


def test_db_stop_answers_without_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing runs in the data dir: said, exit 0; a configured server is never stopped: 2."""
    assert cli._db_stop(Settings(data_dir=tmp_path), force=False) == 0
    assert capsys.readouterr().out == f"no embedded server is running in {tmp_path}\n"
    assert cli._db_stop(Settings(database_url="postgresql://x@h/d"), force=False) == 2
    assert "never starts or stops" in capsys.readouterr().err


def test_database_errors_hide_a_password_given_in_the_query() -> None:
    """A password in the URL's query (?password=...) is hidden as one in the user info is."""
    configured = Settings(
        database_url="postgresql://hc_app@127.0.0.1:5439/db?sslmode=disable&password=topsecret",
        migration_database_url="postgresql://owner@127.0.0.1:5439/db?PASSWORD=owner-secret",
    )
    line = cli._unavailable(configured, ConnectionRefusedError(111, "Connect call failed"))
    assert line == (
        "cannot use the database (LEDGER_DATABASE_URL=postgresql://hc_app@127.0.0.1:5439/db"
        "?sslmode=disable&password=***, LEDGER_MIGRATION_DATABASE_URL="
        "postgresql://owner@127.0.0.1:5439/db?PASSWORD=***): [Errno 111] Connect call failed"
    )


def test_demo_examples_quote_the_server_url() -> None:
    """Every curl example holds the base URL in quotes, so a path a shell would read otherwise
    (`&`, `;`, a quote) reaches curl whole."""
    base = "http://127.0.0.1:8080/led'ger&x;y"
    assert cli.build_parser().parse_args(["demo", "--base-url", base]).base_url == base
    text = cli_admin.demo_examples(
        base,
        keys=dict.fromkeys(("flexydial", "ozonetel", "vicidial", "jtel", "native"), "k"),
        username="u",
        password="p",  # noqa: S106 - a placeholder
        account="demo",
        account_id=1,
        campaign_id=2,
    )
    curls = [line for line in text.splitlines() if "curl " in line]
    assert len(curls) == 8
    for line in curls:
        words = shlex.split(line.removeprefix("TOKEN=$(").rstrip("\\"))
        assert any(word.startswith(base + "/") for word in words), line
