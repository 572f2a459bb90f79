"""Exports as of a time folded by worker processes (service/export_parallel.py): the same file
as one process makes, from the export's own snapshot, and one process's file when a worker
cannot do its share."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger.ledger.events import LeadDeleted, stream_of_lead
from lead_ledger.service.export_parallel import ExportWorkers
from lead_ledger.service.export_rows import ExportQuery
from lead_ledger.service.exports import ExportRequest, write_export_file
from lead_ledger.settings import Settings
from tests.api.test_exports import archive, csv_rows, download, export, xlsx_rows
from tests.api.test_native import (
    CAMPAIGN_A,
    A,
    api,
    auth,
    ctx,
    insert_lead,
    seeded,
    update_lead,
    write,
)
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

__all__ = ["api", "seeded"]  # fixtures, imported to be found here

FORMATS = ["csv", "xlsx", "jsonl"]


@pytest.fixture
def settings() -> Settings:
    """Three workers for every export as of a time, however small."""
    return Settings(
        admin_token=ADMIN_TOKEN,
        db_pool_min=1,
        db_pool_max=8,
        export_workers=3,
        export_parallel_min_leads=1,
    )


async def varied_campaign(pool: asyncpg.Pool) -> datetime:
    """Campaign north of account A with leads of every kind around a time T, returned: CRM
    names found only in the first and only in the last leads (other shares), extra values,
    formulas, an update, a delete and an insert after T, archive copies."""
    for lead_id in range(6, 16):
        await insert_lead(pool, A, CAMPAIGN_A, lead_id, phone_numbers=[f"+9198765400{lead_id:02d}"])
    await update_lead(pool, A, 1, ctx(A), crm={"first:only": "=1"}, extra={"Count": 3})
    await update_lead(pool, A, 15, ctx(A), crm={"last:only": "x"}, extra={"Flag": True})
    await update_lead(pool, A, 8, ctx(A), name="@SUM(A1)", expires_at="2099-01-31T10:00:00Z")
    await archive(pool, 9, delete=False)
    await archive(pool, 10)
    await asyncio.sleep(0.01)
    at = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await update_lead(pool, A, 6, ctx(A), name="After")
    await write(pool, ctx(A), stream_of_lead(7), 1, [LeadDeleted(lead_id=7, reason="api")], A)
    await insert_lead(pool, A, CAMPAIGN_A, 16, phone_numbers=["+919876540016"], name="New")
    return at


async def one_process_file(
    pool: asyncpg.Pool, request: ExportRequest, scratch: Path, workers: ExportWorkers | None
) -> bytes:
    query = ExportQuery(
        account_id=A,
        campaign_id=CAMPAIGN_A,
        as_of=request.as_of,
        include_archived=request.include_archived,
    )
    scratch.mkdir(exist_ok=True)  # noqa: ASYNC240 - a test's scratch directory
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        written = await write_export_file(conn, query, request, scratch, workers=workers)
    return written.path.read_bytes()


def rows_of(data: bytes, file_format: str) -> Any:
    return csv_rows(data) if file_format == "csv" else xlsx_rows(data)


@pytest.mark.parametrize("include_archived", [False, True])
@pytest.mark.parametrize("file_format", FORMATS)
async def test_the_workers_file_is_the_one_process_file(
    api: Client, seeded: asyncpg.Pool, tmp_path: Path, file_format: str, include_archived: bool
) -> None:
    """Through the API (the job's three workers) and in one process, the same file: csv and
    jsonl byte for byte, xlsx cell for cell; the CRM names of the first and the last share
    both have their columns."""
    at = await varied_campaign(seeded)
    view = await export(
        api,
        campaign="north",
        format=file_format,
        as_of=at.isoformat(),
        include_archived=include_archived,
    )
    made, _ = await download(api, view)
    request = msgspec.convert(
        {
            "campaign": "north",
            "as_of": at,
            "format": file_format,
            "include_archived": include_archived,
        },
        ExportRequest,
    )
    alone = await one_process_file(seeded, request, tmp_path, None)
    if file_format == "xlsx":
        assert xlsx_rows(made) == xlsx_rows(alone)
    else:
        assert made == alone
    if file_format != "jsonl":
        rows = rows_of(made, file_format)
        assert rows[0]["first:only"] == "'=1"
        assert rows[-1]["last:only"] == "x"
        ids = [int(r["lead_id"]) for r in rows]
        assert ids == sorted(ids)
        assert 7 in ids
        assert 16 not in ids
        assert (10 in ids) is include_archived


async def test_each_worker_folds_a_share(
    seeded: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    """Three workers spool a share each, every share holds leads, and together they are the
    one-process file; below `min_leads` no worker starts."""
    at = await varied_campaign(seeded)
    request = ExportRequest(campaign="north", as_of=at, format="csv")
    alone = await one_process_file(seeded, request, tmp_path / "alone", None)
    workers = ExportWorkers(database_url=database_url, count=3, min_leads=1)
    shared = tmp_path / "shared"
    assert await one_process_file(seeded, request, shared, workers) == alone
    shares = [shared / f"share-{n}.csv" for n in range(3)]
    assert all(share.read_bytes().count(b"\n") >= 3 for share in shares)
    few = msgspec.structs.replace(workers, min_leads=100)
    single = tmp_path / "single"
    assert await one_process_file(seeded, request, single, few) == alone
    assert not list(single.glob("share-*"))


async def test_the_workers_read_the_exports_snapshot(
    api: Client, seeded: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    """A subject erased after the export's transaction took its snapshot is still readable in
    every worker's share, as in the export's own reads: they read that snapshot, not the
    database as it is when they start."""
    at = await varied_campaign(seeded)
    request = ExportRequest(campaign="north", as_of=at, format="jsonl")
    query = ExportQuery(account_id=A, campaign_id=CAMPAIGN_A, as_of=at)
    workers = ExportWorkers(database_url=database_url, count=3, min_leads=1)
    async with seeded.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await conn.fetchval("SELECT count(*) FROM subject_keys")  # the snapshot is taken
        erased = await api.post("/v1/erasures", json={"lead_id": 14}, headers=auth())
        assert erased.status == 200, await erased.text()
        written = await write_export_file(conn, query, request, tmp_path, workers=workers)
    assert (tmp_path / "share-2.jsonl").exists()
    assert b'"phone_numbers":["+919876540014"]' in written.path.read_bytes()
    after = await one_process_file(seeded, request, tmp_path / "after", workers)
    assert b"+919876540014" not in after


async def test_a_worker_that_cannot_connect_leaves_the_export_to_this_process(
    seeded: asyncpg.Pool, tmp_path: Path
) -> None:
    """Workers given a database they cannot reach fail; the export is then folded in the
    job's own process, from the same snapshot, and is the same file."""
    at = await varied_campaign(seeded)
    request = ExportRequest(campaign="north", as_of=at, format="csv")
    alone = await one_process_file(seeded, request, tmp_path / "alone", None)
    unreachable = ExportWorkers(
        database_url="postgresql://nobody@127.0.0.1:1/nowhere", count=2, min_leads=1
    )
    assert await one_process_file(seeded, request, tmp_path / "fallback", unreachable) == alone
