"""`lead-ledger export` in process through cli_export, on this test's database: the file it
writes now and as of a time, and its refusals."""

from __future__ import annotations

import argparse
import asyncio
import csv
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
import pytest

from lead_ledger import cli_admin, cli_export
from lead_ledger.cli_account import cli_context
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.settings import Settings
from tests.conftest import TEST_MASTER_KEY

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def run(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run admin and export commands on this test's database."""
    parser = argparse.ArgumentParser(prog="lead-ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    cli_admin.add_commands(commands)
    cli_export.add_commands(commands)

    async def invoke(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(argv)
        settings = Settings(
            database_url=database_url, data_dir=tmp_path, master_key=TEST_MASTER_KEY
        )
        runner = cli_admin.run if args.command == "admin" else cli_export.run_export
        code = await runner(args, settings)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


async def add(pool: asyncpg.Pool, names: list[str]) -> None:
    async with pool.acquire() as conn, write_transaction(conn):
        account_id = await conn.fetchval("SELECT account_id FROM accounts WHERE name = 'acme'")
        campaign_id = await conn.fetchval("SELECT campaign_id FROM campaigns WHERE name = 'sales'")
        rows = [
            LeadFields(phone_numbers=[f"98765000{n:02d}"], name=name)
            for n, name in enumerate(names)
        ]
        await insert_leads(
            conn,
            cli_context(),
            account_id=account_id,
            campaign_id=campaign_id,
            rows=rows,
            check_duplicates=False,
        )


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def test_export_now_and_as_of(run: Run, tmp_path: Path, pool: asyncpg.Pool) -> None:
    """The campaign's leads now, and as of a time before later ones were added; the summary
    names the file and its rows."""
    assert (await run("admin", "accounts", "create", "acme", "--default-region", "IN"))[0] == 0
    assert (await run("admin", "campaigns", "create", "acme", "sales"))[0] == 0
    await add(pool, ["Asha", "Ravi"])
    await asyncio.sleep(0.01)
    at = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await add(pool, ["Late"])
    now_file = tmp_path / "now.csv"
    code, out, err = await run(
        "export", "--account", "acme", "--campaign", "sales", "-o", str(now_file)
    )
    assert code == 0, err
    assert msgspec.json.decode(out)["rows"] == 3
    assert [r["name"] for r in read(now_file)] == ["Asha", "Ravi", "Late"]
    then_file = tmp_path / "then.csv"
    code, out, err = await run(
        "export", "--account", "acme", "--as-of", at.isoformat(), "-o", str(then_file)
    )
    assert code == 0, err
    assert msgspec.json.decode(out) == {
        "file": str(then_file),
        "rows": 2,
        "bytes": then_file.stat().st_size,
    }
    assert [r["name"] for r in read(then_file)] == ["Asha", "Ravi"]


async def test_refusals(run: Run, tmp_path: Path) -> None:
    """No such account or campaign: 1 with a one-line error; a bad time: 2; nothing written."""
    assert (await run("admin", "accounts", "create", "acme"))[0] == 0
    target = tmp_path / "x.csv"
    code, _, err = await run("export", "--account", "nope", "-o", str(target))
    assert (code, err) == (1, "lead-ledger: no account 'nope'\n")
    code, _, err = await run("export", "--account", "acme", "--campaign", "x", "-o", str(target))
    assert (code, err) == (1, "lead-ledger: no campaign 'x' in 'acme'\n")
    code, _, err = await run("export", "--account", "acme", "--as-of", "soon", "-o", str(target))
    assert (code, err) == (2, "lead-ledger: --as-of 'soon' is not an ISO 8601 time\n")
    early = "0001-01-01T00:00:00+05:00"  # before the first moment there is, in UTC
    code, _, err = await run("export", "--account", "acme", "--as-of", early, "-o", str(target))
    assert code == 2
    assert err == (
        f"lead-ledger: --as-of {early!r} is out of range: in UTC it must fall in the years 1"
        " to 9999\n"
    )
    assert not target.exists()


async def test_a_future_as_of_is_refused_as_the_api_refuses_it(run: Run, tmp_path: Path) -> None:
    """An --as-of after now exits 2 with one line, and writes nothing: what the log will hold
    then is not known yet."""
    assert (await run("admin", "accounts", "create", "acme"))[0] == 0
    target = tmp_path / "x.csv"
    later = "2099-01-01T00:00:00Z"
    code, out, err = await run("export", "--account", "acme", "--as-of", later, "-o", str(target))
    assert (code, out, err) == (2, "", f"lead-ledger: --as-of {later!r} is in the future\n")
    assert not target.exists()


async def test_a_value_longer_than_an_xlsx_cell_writes_no_xlsx(
    run: Run, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """A name of 40,000 characters: 1 naming the column and the formats that hold it, no
    file; the csv holds it whole."""
    assert (await run("admin", "accounts", "create", "acme", "--default-region", "IN"))[0] == 0
    assert (await run("admin", "campaigns", "create", "acme", "sales"))[0] == 0
    await add(pool, ["x" * 40_000])
    target = tmp_path / "leads.xlsx"
    code, _, err = await run("export", "--account", "acme", "--format", "xlsx", "-o", str(target))
    assert code == 1
    assert err == (
        "lead-ledger: not exported: name holds more than 32,767 characters in a lead, more than"
        " an xlsx cell holds: export as csv or jsonl\n"
    )
    assert not target.exists()
    code, _, err = await run("export", "--account", "acme", "-o", str(tmp_path / "leads.csv"))
    assert code == 0, err
    assert read(tmp_path / "leads.csv")[0]["name"] == "x" * 40_000


async def test_the_file_is_checked_first_and_replaced_whole(
    run: Run, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """A target in a folder that does not exist, or a folder: 1 before the export runs; an
    existing file is replaced whole, keeping its mode, and nothing is left beside it; a
    symlink is written through, not replaced."""
    assert (await run("admin", "accounts", "create", "acme", "--default-region", "IN"))[0] == 0
    assert (await run("admin", "campaigns", "create", "acme", "sales"))[0] == 0
    await add(pool, ["Asha"])
    missing = tmp_path / "nowhere" / "x.csv"
    code, out, err = await run("export", "--account", "acme", "-o", str(missing))
    assert (code, out) == (1, "")
    assert err == f"lead-ledger: cannot write {missing}: {missing.parent} is no directory\n"
    code, _, err = await run("export", "--account", "acme", "-o", str(tmp_path))
    assert (code, err) == (1, f"lead-ledger: cannot write {tmp_path}: {tmp_path} is a directory\n")
    target = tmp_path / "out" / "leads.csv"
    target.parent.mkdir()
    target.write_text("an older file, longer than the export will be\n" * 100)
    target.chmod(0o600)
    code, _, err = await run("export", "--account", "acme", "-o", str(target))
    assert code == 0, err
    assert [r["name"] for r in read(target)] == ["Asha"]
    assert [p.name for p in target.parent.iterdir()] == ["leads.csv"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    link = target.parent / "latest.csv"
    link.symlink_to(target)
    await add(pool, ["Ravi"])
    code, _, err = await run("export", "--account", "acme", "-o", str(link))
    assert code == 0, err
    assert link.is_symlink()
    assert [r["name"] for r in read(target)] == ["Asha", "Ravi"]
