"""Ozonetel bulk upload: hostile workbooks answer the vendor's refusal and the app keeps serving
(issue 11, item 1)."""

from __future__ import annotations

import os

import asyncpg

from lead_ledger.api.keys import FILE_PARSER
from lead_ledger.service.workbook_bounds import MAX_PART_BYTES
from tests import workbooks
from tests.api.test_ozonetel_bulk import (
    ACCEPTED,
    Account,
    acme,
    api,
    error,
    job_count,
    make_client,
    upload,
)
from tests.support import Client

__all__ = ["acme", "api", "make_client"]  # fixtures, imported to be found here

DATA_LIMIT = error("Data limit exceeded")


async def test_corner_bomb_answers_data_limit(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """The 1.6 KB A1 + XFD1048576 workbook: "Data limit exceeded", then a normal file is taken."""
    assert await upload(api, acme, workbooks.corner_bomb(), "bomb.xlsx") == (200, DATA_LIMIT)
    assert await job_count(pool) == 0
    assert await upload(api, acme, workbooks.phones(3), "leads.xlsx") == (200, ACCEPTED)


async def test_inflating_sheet_answers_data_limit(api: Client, acme: Account) -> None:
    """A sheet that inflates past the part bound: "Data limit exceeded"."""
    data = workbooks.inflating(MAX_PART_BYTES + 1)
    assert await upload(api, acme, data, "big.xlsx") == (200, DATA_LIMIT)


async def test_upload_is_parsed_in_the_apps_worker(api: Client, acme: Account) -> None:
    """The file is parsed in the app's parser worker, a process of its own."""
    assert await upload(api, acme, workbooks.phones(3), "leads.xlsx") == (200, ACCEPTED)
    assert api.app[FILE_PARSER].pid() not in (None, os.getpid())
