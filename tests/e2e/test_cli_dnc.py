"""`lead-ledger dnc import` and `lead-ledger dnc check` in process through cli_dnc, on this
test's database, with real csv files."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec
import pytest

from lead_ledger import cli_admin, cli_dnc
from lead_ledger.cli_account import cli_context
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import dnc
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.settings import Settings
from tests.conftest import TEST_MASTER_KEY

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def run(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run admin and dnc commands on this test's database."""
    parser = argparse.ArgumentParser(prog="lead-ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    cli_admin.add_commands(commands)
    cli_dnc.add_commands(commands)

    async def invoke(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(argv)
        settings = Settings(
            database_url=database_url, data_dir=tmp_path, master_key=TEST_MASTER_KEY
        )
        runner = cli_admin.run if args.command == "admin" else cli_dnc.run
        code = await runner(args, settings)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


async def account(run: Run) -> None:
    created = await run("admin", "accounts", "create", "acme", "--default-region", "IN")
    assert created[0] == 0, created
    assert (await run("admin", "campaigns", "create", "acme", "sales"))[0] == 0


async def test_import_adds_each_number_once_and_check_finds_them(
    run: Run, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """A header, blank rows and spellings of one number: each number once; run again, nothing
    more is added; `check` finds the entry for any spelling, in any campaign."""
    await account(run)
    rows = [["phone"], ["9876543210"], [""], ["+91 98765 43210"], ["9812345678", "extra cell"]]
    path = write(tmp_path / "dnc.csv", rows)
    code, out, _ = await run("dnc", "import", str(path), "--account", "acme")
    assert code == 0
    assert msgspec.json.decode(out) == {"added": 2, "already_listed": 1, "not_blocking": 0}
    code, out, _ = await run("dnc", "import", str(path), "--account", "acme")
    assert msgspec.json.decode(out) == {"added": 0, "already_listed": 3, "not_blocking": 0}
    assert await pool.fetchval("SELECT count(*) FROM dnc WHERE campaign_id IS NULL") == 2
    code, out, _ = await run(
        "dnc", "check", "--account", "acme", "--campaign", "sales", "09876543210"
    )
    assert code == 0
    answer = msgspec.json.decode(out)
    assert answer["blocked"] is True
    assert answer["entries"][0]["source"] == "admin"
    code, out, _ = await run("dnc", "check", "--account", "acme", "9800000000")
    assert msgspec.json.decode(out)["blocked"] is False


async def test_campaign_and_expiry(run: Run, tmp_path: Path, pool: asyncpg.Pool) -> None:
    """--campaign scopes the entries; --expires is their last blocking day."""
    await account(run)
    path = write(tmp_path / "dnc.csv", [["9876543210"]])
    argv = ("dnc", "import", str(path), "--account", "acme", "--campaign", "sales")
    assert (await run(*argv, "--expires", "2099-01-31"))[0] == 0
    row = await pool.fetchrow("SELECT campaign_id, expires_at FROM dnc")
    assert row is not None
    assert row["campaign_id"] is not None
    assert row["expires_at"].isoformat() == "2099-02-01T00:00:00+00:00"
    _, out, _ = await run("dnc", "check", "--account", "acme", "--campaign", "sales", "9876543210")
    assert msgspec.json.decode(out)["blocked"] is True
    _, out, _ = await run("dnc", "check", "--account", "acme", "9876543210")
    assert msgspec.json.decode(out)["blocked"] is False  # another campaign's entry
    # The last day there is: blocks to the last moment a time holds (a traceback before).
    path = write(tmp_path / "later.csv", [["9876543211"]])
    later = ("dnc", "import", str(path), "--account", "acme")
    assert (await run(*later, "--expires", "9999-12-31"))[0] == 0
    last = await pool.fetchval("SELECT expires_at FROM dnc WHERE expires_at > '9999-01-01'")
    assert last.isoformat() == "9999-12-31T23:59:59+00:00"


async def test_an_import_says_which_listed_numbers_do_not_block(
    run: Run, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """A number whose entry was made Inactive is listed already, so the import leaves it: the
    answer counts it as not blocking and a line says how to block it again."""
    await account(run)
    path = write(tmp_path / "dnc.csv", [["9876543210"], ["9812345678"]])
    assert (await run("dnc", "import", str(path), "--account", "acme"))[0] == 0
    async with pool.acquire() as conn:
        entry_id = await conn.fetchval("SELECT min(entry_id) FROM dnc")
        account_id = await conn.fetchval("SELECT account_id FROM accounts WHERE name = 'acme'")
        await dnc.change_entry(conn, cli_context(), account_id, entry_id, status="Inactive")
    code, out, err = await run("dnc", "import", str(path), "--account", "acme")
    assert code == 0
    assert msgspec.json.decode(out) == {"added": 0, "already_listed": 2, "not_blocking": 1}
    assert "1 number(s) of the file were listed already with an entry that does not block" in err
    assert "PATCH /v1/dnc/{id}" in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("--account", "nobody"), 1, "no account 'nobody'"),
        (("--account", "acme", "--campaign", "nope"), 1, "no campaign 'nope'"),
        (("--account", "acme", "--expires", "31/01/2027"), 2, "is not YYYY-MM-DD"),
        (("--account", "acme", "--expires", "2020-01-31"), 2, "has passed"),
    ],
)
async def test_refusals_are_one_line_and_import_nothing(
    run: Run, tmp_path: Path, pool: asyncpg.Pool, argv: tuple[str, ...], code: int, message: str
) -> None:
    """An unknown account or campaign, or a bad date: an exit code and a line; no entry."""
    await account(run)
    path = write(tmp_path / "dnc.csv", [["9876543210"]])
    result = await run("dnc", "import", str(path), *argv)
    assert result[0] == code
    assert message in result[2]
    assert await pool.fetchval("SELECT count(*) FROM dnc") == 0


async def test_a_file_with_bad_numbers_imports_nothing(
    run: Run, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """Every bad line is counted, the first ones named with their line numbers."""
    await account(run)
    rows = [["9876543210"], ["abc"], ["12"], *[[f"x{n}"] for n in range(6)]]
    path = write(tmp_path / "dnc.csv", rows)
    code, _, err = await run("dnc", "import", str(path), "--account", "acme")
    assert code == 2
    assert "line 2: 'abc'" in err
    assert "line 3: '12'" in err
    assert "and 3 more" in err
    assert await pool.fetchval("SELECT count(*) FROM dnc") == 0
    missing = await run("dnc", "import", str(tmp_path / "none.csv"), "--account", "acme")
    assert missing[0] == 1
    assert "cannot read" in missing[2]


async def test_an_import_in_many_batches_adds_each_number_once_and_marks_leads(
    run: Run, pool: asyncpg.Pool
) -> None:
    """Batches prepared while the one before is written: a number repeated in a later batch
    (another spelling) is added once, progress is reported per batch, and a live lead of an
    imported number is marked."""
    await account(run)
    account_id = await pool.fetchval("SELECT account_id FROM accounts WHERE name = 'acme'")
    campaign_id = await pool.fetchval("SELECT campaign_id FROM campaigns")
    numbers = [f"98765000{n:02d}" for n in range(11)]
    numbers[9:9] = ["+91 98765 00002"]  # batch 3 repeats batch 1's third number
    numbers.append("0987650-0005")  # and batch 4 the second batch's second
    async with pool.acquire() as conn, write_transaction(conn):
        inserted = await insert_leads(
            conn,
            cli_context(),
            account_id=account_id,
            campaign_id=campaign_id,
            rows=[LeadFields(phone_numbers=["9876500010"])],
            check_duplicates=False,
        )
    (lead_id,) = inserted.inserted.values()
    seen: list[int] = []
    entries = [dnc.NewDncEntry(phone=number) for number in numbers]
    async with pool.acquire() as conn:
        added = await cli_dnc.import_entries(
            conn, cli_context(), account_id, entries, seen.append, batch_size=4
        )
    assert (added, seen) == (11, [4, 8, 12, 13])
    listed = await pool.fetch("SELECT number FROM dnc ORDER BY entry_id")
    assert sorted(r["number"] for r in listed) == sorted(f"+9198765000{n:02d}" for n in range(11))
    marks = await pool.fetch("SELECT lead_id FROM lead_dnc")
    assert [r["lead_id"] for r in marks] == [lead_id]
