"""Ozonetel bulk upload: every file-validation message of seed 001 through the endpoint, with
real csv and xlsx files; a refused file submits nothing and does not use up the rate limit."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.api.test_ozonetel_bulk import (
    ACCEPTED,
    Account,
    Cell,
    acme,
    api,
    error,
    job_count,
    make_account,
    make_client,
    upload,
    write_file,
)
from tests.support import Client, fresh_minute

__all__ = ["acme", "api", "make_client"]  # fixtures, imported to be found here

Rows = list[list[Cell]]
WIDE: Rows = [
    ["PhoneNumber", *(f"c{i}" for i in range(44))],
    ["9876543210", *("x" for _ in range(39))],  # 40 filled cells: allowed
    ["9876543211", *("x" for _ in range(40))],  # 41: too many
    ["9876543212", *("x" for _ in range(39)), "", "", ""],  # trailing empties do not count
    ["9876543213", *("x" for _ in range(44))],
]
CASES: list[tuple[str, str, Rows, str]] = [
    ("no phone column", "sales", [["Name"], ["Asha"]], "Map file doesnt contain phoneNumber"),
    (
        "agentwise, no agent column",
        "agents",
        [["PhoneNumber"], ["9876543210"]],
        "Map file doesnt contain Agent Id",
    ),
    (
        "skillwise, no skill column",
        "skills",
        [["PhoneNumber", "AgentId"], ["9876543210", "agent-1"]],
        "Skillwise campaign doesn't have skill as column",
    ),
    (
        "header only",
        "sales",
        [["PhoneNumber", "Name"]],
        "Uploaded xlsx File Should Not Be Empty",
    ),
    (
        "blank rows only",
        "sales",
        [["PhoneNumber", "Name"], ["", ""], ["  ", ""]],
        "Uploaded xlsx File Should Not Be Empty",
    ),
    (
        "invalid phones",
        "sales",
        [
            ["phoneNumber", "Name"],
            ["98765x3210", "a"],
            ["9876543210", "b"],
            ["12", "c"],
            ["", "d"],  # a blank phone in a row that is not blank
            ["+91 (98765) 43210", "e"],
        ],
        "Invalid phone no.s found at rows [1,3,4] for campaign sales",
    ),
    (
        "invalid agent ids",
        "agents",
        [
            ["PhoneNumber", "agent_id"],
            ["9876543210", "agent-1"],
            ["9876543211", "nobody"],
            ["9876543212", ""],
            ["9876543213", "AGENT-1"],
        ],
        "Invalid AgentIds found at rows [2,3,4] for campaign agents",
    ),
    (
        "invalid skills",
        "skills",
        [["phone_number", "Skill"], ["9876543210", "sales"], ["9876543211", "billing"]],
        "Invalid Skill names found at rows [1] for campaign skills",
    ),
    (
        "excess columns",
        "sales",
        WIDE,
        "Excess columns found at rows [2,4] for campaign sales",
    ),
    (
        "name over 100 characters",
        "sales",
        [["PhoneNumber", "Name"], ["9876543210", "a" * 100], ["9876543211", "b" * 101]],
        "Rows exceeded allowed name column size(100) : [2]",
    ),
    (
        "phones checked before names",
        "sales",
        [["PhoneNumber", "Name"], ["1", "a" * 101]],
        "Invalid phone no.s found at rows [1] for campaign sales",
    ),
]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
@pytest.mark.parametrize(
    ("campaign", "rows", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_file_validation_message(
    api: Client,
    acme: Account,
    tmp_path: Path,
    pool: asyncpg.Pool,
    kind: str,
    campaign: str,
    rows: Rows,
    message: str,
) -> None:
    """The whole file is refused with the vendor's exact message; nothing is submitted."""
    data = write_file(kind, tmp_path / f"leads.{kind}", rows)
    assert await upload(api, acme, data, f"leads.{kind}", campaignName=campaign) == (
        200,
        error(message),
    )
    assert await job_count(pool) == 0


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_data_limit(
    api: Client, acme: Account, tmp_path: Path, pool: asyncpg.Pool, kind: str
) -> None:
    """50,001 data rows: Data limit exceeded (50,000 are accepted: see the jobs tests)."""
    rows: Rows = [["PhoneNumber"]]
    rows += [[f"9{i:09d}"] for i in range(50_001)]
    data = write_file(kind, tmp_path / f"big.{kind}", rows)
    assert await upload(api, acme, data) == (200, error("Data limit exceeded"))
    assert await job_count(pool) == 0


async def test_empty_workbook(api: Client, acme: Account, tmp_path: Path) -> None:
    """A workbook whose sheet has no cells at all: Uploaded xlsx File Should Not Be Empty."""
    data = write_file("xlsx", tmp_path / "empty.xlsx", [])
    assert await upload(api, acme, data, "empty.xlsx") == (
        200,
        error("Uploaded xlsx File Should Not Be Empty"),
    )


async def test_invalid_file_does_not_use_up_the_rate_limit(
    api: Client, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """With the default one upload a minute, a refused file leaves it for the corrected one."""
    acme = await make_account(api, per_minute=None)
    bad = write_file("csv", tmp_path / "bad.csv", [["Name"], ["Asha"]])
    good = write_file("csv", tmp_path / "good.csv", [["PhoneNumber"], ["9876543210"]])
    await fresh_minute()
    refused = await upload(api, acme, bad)
    assert refused == (200, error("Map file doesnt contain phoneNumber"))
    assert await upload(api, acme, good) == (200, ACCEPTED)
    assert await job_count(pool) == 1
