"""Erasures and export files: an erasure of leads removes every stored file of the account, an
erasure of refused rows only removes none, and an export read before an erasure that commits
before its file is stored fails and stores nothing. Every test ends with `projections verify`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import exports, jobs
from lead_ledger.service.erasures import Erasure, ErasureRequest, erase
from lead_ledger.service.lead_inserts import NewLead, insert_lead_groups
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context
from tests.api.test_exports import download, export
from tests.api.test_native import CAMPAIGN_A, KEY_B, A, api, auth, ctx, seeded, update_lead
from tests.support import Client, waiting_for_lock

__all__ = ["api", "seeded"]  # fixtures, imported to be found here

PHONE = "+919876543211"  # lead 1 of account A; account B's lead 100 has it too
OTHER_PHONE = "+919800000099"  # in no lead
CHUNKS = "SELECT count(*) FROM job_output_chunks WHERE job_id = $1"
JOB_EVENTS = """
SELECT type, data->>'reason' AS reason FROM events
WHERE stream_id = 'job-' || $1::bigint ORDER BY stream_version
"""
REFUSALS = """
SELECT e.data->'existing_lead_ids'->>0 AS lead_id, k.wrapped_key IS NULL AS erased
FROM events e JOIN subject_keys k ON k.subject_id = 'refused-' || e.event_id
WHERE e.account_id = $1 AND e.type = 'LeadRejected'
"""
RETENTION = timedelta(hours=24)
Step = Callable[[], Awaitable[None]]


async def erased(api: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1/erasures", json=body, headers=auth())
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def removals(pool: asyncpg.Pool, job_id: int) -> list[str]:
    """The reasons of the job's JobOutputRemoved events."""
    rows = await pool.fetch(JOB_EVENTS, job_id)
    return [row["reason"] for row in rows if row["type"] == "JobOutputRemoved"]


async def test_an_erasure_removes_every_file_of_the_account(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """Every stored file of the account goes (removed as the sweep removes one, reason erasure);
    another account's file, holding the same number for a lead of its own, stays."""
    north = await export(api, campaign="north")
    south = await export(api, campaign="south", format="xlsx")
    other = await export(api, KEY_B, format="jsonl")
    assert PHONE.encode() in (await download(api, north))[0]
    erasure = await erased(api, {"phone": PHONE})
    assert erasure["lead_ids"] == [1]
    for view in (north, south):
        job_id = view["export_id"]
        got = await (await api.get(f"/v1/exports/{job_id}", headers=auth())).json()
        assert (got["state"], got["download_url"]) == ("removed", None)
        assert got["removed_at"] is not None
        assert (await api.get(f"/v1/exports/{job_id}/file", headers=auth())).status == 404
        assert await seeded.fetchval(CHUNKS, job_id) == 0
        assert await removals(seeded, job_id) == ["erasure"]
    kept = await (await api.get(f"/v1/exports/{other['export_id']}", headers=auth(KEY_B))).json()
    assert kept["state"] == "done"
    assert await seeded.fetchval(CHUNKS, other["export_id"]) > 0
    assert await removals(seeded, other["export_id"]) == []
    response = await api.get(f"/v1/exports/{other['export_id']}/file", headers=auth(KEY_B))
    assert response.status == 200
    assert b"9876543211" in await response.read()
    # The sweep passes over a file an erasure removed.
    async with seeded.acquire() as conn:
        later = datetime.now(UTC) + 2 * RETENTION
        assert await exports.sweep_expired(conn, later, RETENTION) == 1  # account B's only
    assert await removals(seeded, north["export_id"]) == ["erasure"]
    assert await removals(seeded, other["export_id"]) == ["retention"]


async def test_an_erasure_of_a_refused_row_only_removes_no_file(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """A refused duplicate's row is no lead and in no file: erasing only it keeps the files;
    erasing the lead it duplicated then removes them."""
    refusal = NewLead(
        fields=LeadFields(phone_numbers=[PHONE, OTHER_PHONE]),
        ctx=ctx(A),
        check_duplicates=True,
        rejections_stream="request-refused",
    )
    async with seeded.acquire() as conn, write_transaction(conn, campaigns=[CAMPAIGN_A]):
        result = await insert_lead_groups(conn, account_id=A, groups={CAMPAIGN_A: [refusal]})
    assert result[CAMPAIGN_A].duplicates == {0: [1]}
    view = await export(api, campaign="north")
    erasure = await erased(api, {"phone": OTHER_PHONE})
    assert (erasure["subjects"], erasure["lead_ids"]) == (1, [])
    got = await (await api.get(f"/v1/exports/{view['export_id']}", headers=auth())).json()
    assert got["state"] == "done"
    assert await removals(seeded, view["export_id"]) == []
    assert PHONE.encode() in (await download(api, view))[0]
    assert (await erased(api, {"lead_id": 1}))["lead_ids"] == [1]
    assert await removals(seeded, view["export_id"]) == ["erasure"]


async def _submitted(pool: asyncpg.Pool, **request: Any) -> jobs.Claim:
    """An export of account A submitted and claimed here (no app: no other worker takes it)."""
    async with pool.acquire() as conn:
        await exports.submit_export(conn, ctx(A), A, exports.ExportRequest(**request))
        claim = await jobs.claim_next(conn, "test-worker", 60.0)
    assert claim is not None
    return claim


def _kinds(*, after_read: Step | None = None, after_store: Step | None = None) -> jobs.JobKinds:
    """The export kind, with a step run once the file is read, or once it is stored (in the
    job's transaction, before its commit)."""

    @asynccontextmanager
    async def prepare(conn: Connection, job: jobs.Job, payload: bytes) -> AsyncIterator[bytes]:
        async with exports.prepare_export(conn, job, payload) as prepared:
            if after_read is not None:
                await after_read()
            yield prepared

    async def handler(
        conn: Connection, context: Context, job: jobs.Job, payload: bytes
    ) -> jobs.JobOutcome:
        outcome = await exports.run_export(conn, context, job, payload)
        if after_store is not None:
            await after_store()
        return outcome

    return {exports.KIND: jobs.JobKind(handler=handler, prepare=prepare)}


async def _erase_phone(pool: asyncpg.Pool) -> list[int]:
    async with pool.acquire() as conn:
        erasure = await erase(conn, ctx(A), A, ErasureRequest(phone=PHONE))
    return erasure.lead_ids


async def _view(pool: asyncpg.Pool, job_id: int) -> exports.ExportView:
    async with pool.acquire() as conn:
        view = await exports.export_view(conn, A, job_id, retention=RETENTION, base="http://x")
    assert view is not None
    return view


async def test_an_export_read_before_an_erasure_committed_fails(seeded: asyncpg.Pool) -> None:
    """The file was read before the erasure and stored after it commits: the job fails, says
    why, and stores nothing; an export read after the erasure is stored."""

    async def erase_now() -> None:
        assert await _erase_phone(seeded) == [1]

    claim = await _submitted(seeded, campaign="north")
    async with seeded.acquire() as conn:
        state = await jobs.run_job(conn, "test-worker", claim, _kinds(after_read=erase_now))
    assert state == "failed"
    view = await _view(seeded, claim.job_id)
    assert (view.state, view.error, view.download_url) == (
        "failed",
        exports.ERASED_MEANWHILE,
        None,
    )
    assert await seeded.fetchval(CHUNKS, claim.job_id) == 0
    types = [r["type"] for r in await seeded.fetch(JOB_EVENTS, claim.job_id)]
    assert types == ["JobSubmitted", "JobFailed"]
    again = await _submitted(seeded, campaign="north")
    async with seeded.acquire() as conn:
        assert await jobs.run_job(conn, "test-worker", again, _kinds()) == "done"
    assert (await _view(seeded, again.job_id)).state == "done"


async def test_an_erasure_waits_for_a_file_being_stored_and_removes_it(
    seeded: asyncpg.Pool,
) -> None:
    """An erasure that comes while the file is being stored waits for it, then removes it."""
    claim = await _submitted(seeded, campaign="north")
    erasing: list[asyncio.Task[Erasure]] = []
    async with seeded.acquire() as conn, seeded.acquire() as eraser:

        async def erase_meanwhile() -> None:
            request = ErasureRequest(phone=PHONE)
            erasing.append(asyncio.create_task(erase(eraser, ctx(A), A, request)))
            # The job's transaction holds the files lock until it commits, after this.
            await waiting_for_lock(seeded, eraser.get_server_pid())

        state = await jobs.run_job(conn, "test-worker", claim, _kinds(after_store=erase_meanwhile))
        assert state == "done"
        assert (await erasing[0]).lead_ids == [1]
    view = await _view(seeded, claim.job_id)
    assert view.state == "removed"
    assert await seeded.fetchval(CHUNKS, claim.job_id) == 0
    assert await removals(seeded, claim.job_id) == ["erasure"]


async def _refused(pool: asyncpg.Pool, campaign_id: int, phones: list[str]) -> list[int]:
    """A row refused as a duplicate in account A's campaign; the lead ids it names."""
    refusal = NewLead(
        fields=LeadFields(phone_numbers=phones, name="Refused"),
        ctx=ctx(A),
        check_duplicates=True,
        rejections_stream="request-refused",
    )
    async with pool.acquire() as conn, write_transaction(conn, campaigns=[campaign_id]):
        result = await insert_lead_groups(conn, account_id=A, groups={campaign_id: [refusal]})
    return sorted({i for ids in result[campaign_id].duplicates.values() for i in ids})


async def _refusals(pool: asyncpg.Pool) -> dict[int, bool]:
    """Each refusal of account A: the lead it names, and whether its key is gone (its row can
    never be read again)."""
    rows = await pool.fetch(REFUSALS, A)
    return {int(r["lead_id"]): r["erased"] for r in rows}


async def test_erasing_a_lead_by_id_erases_the_refusals_that_name_it(
    api: Client, seeded: asyncpg.Pool
) -> None:
    """By lead id, the refused duplicates of that lead go with it (found by its number now, or
    by one it no longer has); a refusal naming another lead stays readable."""
    assert await _refused(seeded, CAMPAIGN_A, [PHONE]) == [1]
    assert await _refused(seeded, CAMPAIGN_A, ["+919876543212"]) == [2]
    assert await _refusals(seeded) == {1: False, 2: False}
    # The number the refusal shares with lead 1 leaves the views: found by its digest then.
    await update_lead(seeded, A, 1, ctx(A), phone_numbers=["+919800000011"])
    erasure = await erased(api, {"lead_id": 1})
    assert (erasure["subjects"], erasure["lead_ids"]) == (2, [1])
    assert await _refusals(seeded) == {1: True, 2: False}
    erasure = await erased(api, {"lead_id": 2})
    assert (erasure["subjects"], erasure["lead_ids"]) == (2, [2])
    assert await _refusals(seeded) == {1: True, 2: True}
