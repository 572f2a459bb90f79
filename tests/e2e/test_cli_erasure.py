"""`lead-ledger erase` and `lead-ledger keys ...` in process through cli_erasure, on this test's
database; `serve` refusing a wrong master key as a real process."""

from __future__ import annotations

import argparse
import asyncio
import io
import stat
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger import cli, cli_admin, cli_erasure
from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import connect
from lead_ledger.service import reads
from lead_ledger.settings import Settings
from tests.api.test_ozonetel_add import Account, add, make_account
from tests.conftest import TEST_MASTER_KEY
from tests.support import Client, serve_process

CLI = str(Path(sys.executable).parent / "lead-ledger")
Run = Callable[..., Awaitable[tuple[int, str, str]]]


class Tty(io.StringIO):
    """Standard input with a person at it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lead-ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    cli_admin.add_commands(commands)
    cli_erasure.add_commands(commands)
    return parser


@pytest.fixture
def run(
    database_url: str,
    tmp_path: Path,
    parser: argparse.ArgumentParser,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    """Run admin, erase and keys commands on this test's database; LEDGER_DATA_DIR is a temp
    dir, LEDGER_MASTER_KEY the session's unless `master_key` says otherwise."""

    async def invoke(
        *argv: str, stdin: io.StringIO | None = None, master_key: str | None = TEST_MASTER_KEY
    ) -> tuple[int, str, str]:
        args = parser.parse_args(argv)
        settings = Settings(database_url=database_url, data_dir=tmp_path, master_key=master_key)
        if args.command == "admin":
            code = await cli_admin.run(args, settings)
        elif args.command == "erase":
            code = await cli_erasure.run_erase(args, settings, stdin=stdin or io.StringIO())
        else:
            code = await cli_erasure.run_keys(args, settings)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def session_key() -> Iterator[None]:
    """Whatever a test does to the process's master key, the next test gets the session's."""
    yield
    key_store.use_master_key(subject_keys.parse_master_key(TEST_MASTER_KEY))


async def a_lead(client: Client, pool: asyncpg.Pool) -> tuple[Account, int]:
    """Account acme (region IN) with one lead, Asha at 9876543210, added by AddCampaignData."""
    account = await make_account(client)
    await add(client, account, Name="Asha", phoneNumber="9876543210")
    lead_id: int = await pool.fetchval("SELECT lead_id FROM leads WHERE name = 'Asha'")
    return account, lead_id


def printed(out: str) -> Any:
    """The JSON document the command printed (after any log lines of the app in the test)."""
    return msgspec.json.decode(out[out.index("{\n") :])


async def test_erase_asks_first_and_erases_on_yes(
    client: Client, pool: asyncpg.Pool, run: Run
) -> None:
    """At a terminal, anything but 'yes' erases nothing; 'yes' erases and prints the record."""
    _, lead_id = await a_lead(client, pool)
    code, out, err = await run(
        "erase", "--account", "acme", "--phone", "9876543210", stdin=Tty("no\n")
    )
    assert code == 2
    assert "erasure_id" not in out
    assert "Type 'yes'" in err
    assert f"names 1 subject(s) of account 'acme' now, in every campaign: leads {lead_id};" in err
    assert "not erased" in err
    assert await pool.fetchval("SELECT count(*) FROM leads") == 1
    code, out, _ = await run(
        "erase", "--account", "acme", "--phone", "+91 98765 43210", stdin=Tty("yes\n")
    )
    assert code == 0
    erasure = printed(out)
    assert (erasure["subjects"], erasure["lead_ids"]) == (1, [lead_id])
    assert erasure["actor"] == {"dialect": "admin"}
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_a_dry_run_shows_what_an_erasure_would_take_and_erases_nothing(
    client: Client, pool: asyncpg.Pool, run: Run
) -> None:
    """--dry-run prints the subjects, lead ids and rejected rows the value names now, asks
    nothing, erases and records nothing."""
    _, lead_id = await a_lead(client, pool)
    code, out, err = await run("erase", "--account", "acme", "--phone", "09876543210", "--dry-run")
    assert (code, err) == (0, "")
    assert printed(out) == {
        "by": "phone",
        "subjects": 1,
        "lead_ids": [lead_id],
        "rejected_rows": [],
    }
    assert await pool.fetchval("SELECT count(*) FROM leads") == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'SubjectErased'") == 0


async def test_erase_without_a_terminal_needs_yes(
    client: Client, pool: asyncpg.Pool, run: Run
) -> None:
    """Piped or scripted, nothing is asked and nothing erased unless --yes is given."""
    _, lead_id = await a_lead(client, pool)
    code, _, err = await run("erase", "--account", "acme", "--lead-id", str(lead_id))
    assert code == 2
    assert "pass --yes" in err
    code, out, _ = await run("erase", "--account", "acme", "--lead-id", str(lead_id), "--yes")
    assert code == 0
    assert printed(out)["lead_ids"] == [lead_id]


async def test_erase_refuses_an_unknown_account_and_an_empty_value(
    client: Client, pool: asyncpg.Pool, run: Run
) -> None:
    """No such account: 1, named; a blank value or a phone without digits: 2, before anything
    is looked up."""
    await a_lead(client, pool)
    code, _, err = await run("erase", "--account", "globex", "--user-data", "x", "--yes")
    assert (code, err) == (1, "lead-ledger: no account 'globex'\n")
    code, _, err = await run("erase", "--account", "acme", "--phone", " ", "--yes")
    assert (code, err) == (2, "lead-ledger: phone is empty\n")
    code, _, err = await run("erase", "--account", "acme", "--phone", "n/a", "--yes")
    assert (code, err) == (2, "lead-ledger: phone holds no digits: it is no phone number\n")


async def test_keys_new_prints_a_usable_master_key(run: Run) -> None:
    """Base64 of 32 random bytes, different each time."""
    _, first, _ = await run("keys", "new")
    _, second, _ = await run("keys", "new")
    assert len(subject_keys.parse_master_key(first)) == subject_keys.KEY_BYTES
    assert first != second


@pytest.mark.usefixtures("session_key")
async def test_rotate_with_the_key_file_replaces_it_and_everything_still_opens(
    client: Client, pool: asyncpg.Pool, run: Run, tmp_path: Path, database_url: str
) -> None:
    """Without LEDGER_MASTER_KEY the key file is the master key: rotation re-wraps every key
    under a fresh one, writes it over the file (mode 0600), and the lead still reads; the old
    key no longer opens what is stored."""
    _, lead_id = await a_lead(client, pool)
    key_file = tmp_path / subject_keys.MASTER_KEY_FILE
    key_file.write_text(TEST_MASTER_KEY + "\n")
    wrapped_before = await pool.fetchval("SELECT array_agg(wrapped_key) FROM subject_keys")
    # No other session may hold the database during a rotation: the app and the pool close.
    await client.close()
    await pool.close()
    code, out, err = await run("keys", "rotate", master_key=None)
    assert code == 0, err
    assert "re-wrapped" in out
    new_key = subject_keys.parse_master_key(key_file.read_text())
    assert new_key != subject_keys.parse_master_key(TEST_MASTER_KEY)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (tmp_path / "master.key.new").exists()
    conn = await connect(database_url)
    try:
        assert await conn.fetchval("SELECT array_agg(wrapped_key) FROM subject_keys") != (
            wrapped_before
        )
        await key_store.check_master_key(conn, new_key)
        with pytest.raises(subject_keys.SubjectKeyError):
            await key_store.check_master_key(conn, subject_keys.parse_master_key(TEST_MASTER_KEY))
        key_store.use_master_key(new_key)
        lead = await reads.lead_as_of(conn, await a_account_id(conn), lead_id, version=1)
    finally:
        await conn.close()
    assert lead is not None
    assert lead.name == "Asha"


async def a_account_id(conn: Connection) -> int:
    account_id: int = await conn.fetchval("SELECT account_id FROM accounts WHERE name = 'acme'")
    return account_id


async def test_rotate_refuses_while_a_server_holds_the_database(
    client: Client, pool: asyncpg.Pool, run: Run, tmp_path: Path
) -> None:
    """Another session open (the test's own pool stands for a server): refused, nothing
    changed, and without LEDGER_MASTER_KEY's new key a rotation of a set key is refused too."""
    await a_lead(client, pool)
    wrapped_before = await pool.fetchval("SELECT array_agg(wrapped_key) FROM subject_keys")
    new_key = tmp_path / "new.key"
    new_key.write_text(subject_keys.new_master_key_text())
    code, _, err = await run("keys", "rotate", "--new-key-file", str(new_key))
    assert code == 1
    assert "stop every `lead-ledger serve` first" in err
    assert await pool.fetchval("SELECT array_agg(wrapped_key) FROM subject_keys") == wrapped_before
    code, _, err = await run("keys", "rotate")
    assert code == 2
    assert "give the new key with --new-key-file" in err
    # With the key file as the master key: refused the same, and no new key is left staged
    # beside it (a later rotation would take it for the key of one that did not finish).
    (tmp_path / subject_keys.MASTER_KEY_FILE).write_text(TEST_MASTER_KEY + "\n")
    code, _, err = await run("keys", "rotate", master_key=None)
    assert code == 1
    assert "stop every `lead-ledger serve` first" in err
    assert not (tmp_path / "master.key.new").exists()
    assert await pool.fetchval("SELECT array_agg(wrapped_key) FROM subject_keys") == wrapped_before


async def test_a_rotation_that_fails_before_its_commit_leaves_no_staged_key(
    client: Client, pool: asyncpg.Pool, run: Run, tmp_path: Path, database_url: str
) -> None:
    """A key the master key does not open stops the rotation inside its transaction (the error
    `main` prints as one line, exit 1): nothing re-wrapped, and no master.key.new left for the
    next rotation to take for the key of an unfinished one."""
    await a_lead(client, pool)
    await pool.execute(
        "INSERT INTO subject_keys (subject_id, account_id, wrapped_key) VALUES ('lead-0', 1, $1)",
        b"\x00" * 40,
    )
    wrapped_before = await pool.fetchval("SELECT array_agg(wrapped_key) FROM subject_keys")
    (tmp_path / subject_keys.MASTER_KEY_FILE).write_text(TEST_MASTER_KEY + "\n")
    await client.close()
    await pool.close()
    with pytest.raises(subject_keys.SubjectKeyError, match="the master key does not open"):
        await run("keys", "rotate", master_key=None)
    assert not (tmp_path / "master.key.new").exists()
    assert subject_keys.parse_master_key(
        (tmp_path / subject_keys.MASTER_KEY_FILE).read_text()
    ) == subject_keys.parse_master_key(TEST_MASTER_KEY)
    conn = await connect(database_url)
    try:
        assert await conn.fetchval("SELECT array_agg(wrapped_key) FROM subject_keys") == (
            wrapped_before
        )
    finally:
        await conn.close()


async def test_a_server_starting_during_a_rotation_never_runs_on_the_old_key(
    client: Client, pool: asyncpg.Pool, run: Run, tmp_path: Path, database_url: str
) -> None:
    """A server starts (connects and checks its master key, the old one) while a rotation of
    40,000 keys runs, after the rotation looked for other sessions: either the rotation counts
    it and refuses, or the server's check waits for the rotation and then refuses the old key;
    never a rotation done and a server up on the key it replaced."""
    await a_lead(client, pool)
    account_id = await a_account_id_of(pool)
    old = subject_keys.parse_master_key(TEST_MASTER_KEY)
    wrapped = subject_keys.wrap(old, subject_keys.new_data_key())
    await pool.execute(
        "INSERT INTO subject_keys (subject_id, account_id, wrapped_key)"
        " SELECT 'bench-' || n, $1, $2 FROM generate_series(1, 40000) AS n",
        account_id,
        wrapped,
    )
    key_file = tmp_path / subject_keys.MASTER_KEY_FILE
    key_file.write_text(TEST_MASTER_KEY + "\n")
    await client.close()
    await pool.close()
    rotating = asyncio.ensure_future(run("keys", "rotate", master_key=None))
    staged = tmp_path / "master.key.new"  # written just before the rotation's transaction
    for _ in range(2000):
        if staged.exists() or rotating.done():
            break
        await asyncio.sleep(0.005)
    starting = await connect(database_url)
    try:
        check = asyncio.create_task(key_store.check_master_key(starting, old))
        code, _, err = await rotating
        (started,) = await asyncio.gather(check, return_exceptions=True)
    finally:
        await starting.close()
    if code == 0:
        # The teardown's verify opens the events with the key the rotation left.
        key_store.use_master_key(subject_keys.parse_master_key(key_file.read_text()))
        assert isinstance(started, subject_keys.SubjectKeyError), "up on the old key"
    else:
        assert "stop every `lead-ledger serve` first" in err
        assert started is None


async def a_account_id_of(pool: asyncpg.Pool) -> int:
    account_id: int = await pool.fetchval("SELECT account_id FROM accounts WHERE name = 'acme'")
    return account_id


async def test_rotate_names_a_new_key_file_it_cannot_read(run: Run, tmp_path: Path) -> None:
    """A missing file or a directory is the argument's fault: 2 and one line naming it, not
    the database's."""
    for path in (tmp_path / "missing.key", tmp_path):
        code, _, err = await run("keys", "rotate", "--new-key-file", str(path))
        assert code == 2
        assert err.startswith(f"lead-ledger: cannot read --new-key-file {path}: "), err
        assert "database" not in err


async def test_rotate_names_a_new_key_file_that_holds_no_key(run: Run, tmp_path: Path) -> None:
    """A file that is not base64 or not 32 bytes is the argument's fault too: 2 and one line
    naming it, before the database is used."""
    path = tmp_path / "junk.key"
    for text, said in (
        ("c2hvcnQ=\n", "must be 32 bytes of base64, not 5"),
        ("junk!", "is not base64"),
    ):
        path.write_text(text)
        code, out, err = await run("keys", "rotate", "--new-key-file", str(path))
        assert (code, out, err) == (2, "", f"lead-ledger: --new-key-file {path} {said}\n")


async def test_rotate_refuses_an_unfinished_earlier_rotation(run: Run, tmp_path: Path) -> None:
    """A master.key.new left behind may hold the database's key: never overwritten."""
    (tmp_path / "master.key.new").write_text(subject_keys.new_master_key_text())
    code, _, err = await run("keys", "rotate", master_key=None)
    assert code == 1
    assert "an earlier rotation did not finish" in err


def test_serve_refuses_a_master_key_that_does_not_open_the_database(
    database_url: str, tmp_path: Path
) -> None:
    """A real `serve` with another LEDGER_MASTER_KEY than the keys were stored with exits 1
    with one line naming the setting, before it listens."""

    async def store_a_key() -> None:
        conn = await connect(database_url)
        try:
            await key_store.keys_for_writing(conn, key_store.master_key(), 1, ["lead-1"])
        finally:
            await conn.close()

    asyncio.run(store_a_key())
    log = tmp_path / "stderr"
    with log.open("wb") as err:
        served = serve_process(
            database_url,
            stderr=err,
            LEDGER_DATA_DIR=str(tmp_path),
            LEDGER_MASTER_KEY=subject_keys.new_master_key_text(),
        )
        assert served.process.wait(timeout=60) == 1
    stderr = log.read_text()
    assert "LEDGER_MASTER_KEY does not open the keys this database holds" in stderr
    assert "Traceback" not in stderr


@pytest.mark.usefixtures("session_key")
def test_a_master_key_that_is_no_key_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """LEDGER_MASTER_KEY not base64, or not 32 bytes: 2 and one line naming the setting, before
    any database is touched; a key file that cannot be made: 1, naming the file and the fix.
    (`main` runs this first; called alone here, so the test leaves the logging as it was.)"""
    for bad, said in (("not a key!", "is not base64"), ("c2hvcnQ=", "must be 32 bytes")):
        assert cli._use_master_key(Settings(master_key=bad, data_dir=tmp_path)) == 2
        assert said in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert cli._use_master_key(Settings(data_dir=blocked / "data")) == 1
    err = capsys.readouterr().err
    assert "cannot read or create the master key file" in err
    assert "LEDGER_MASTER_KEY" in err
