"""Ozonetel bulk upload: the accepted file's job runs, inserts the leads, starts the campaign for
action=start, and POSTs the vendor's callback body (success or failure) to callBackUrl."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lead_ledger.api.callback_http import poster
from lead_ledger.service import callbacks, jobs
from lead_ledger.service.job_kinds import job_kinds
from tests.api.test_ozonetel_bulk import (
    ACCEPTED,
    GOOD_ROWS,
    Account,
    acme,
    api,
    campaign_state,
    make_account,
    make_client,
    upload,
    write_csv,
    write_file,
    write_xlsx,
)
from tests.support import Client, serve_process

__all__ = ["acme", "api", "make_client"]  # fixtures, imported to be found here


class Receiver:
    """A local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self, server: TestServer) -> None:
        self.url = str(server.make_url("/callback"))
        self.bodies: asyncio.Queue[Any] = asyncio.Queue()

    async def next(self) -> Any:
        return await asyncio.wait_for(self.bodies.get(), timeout=30)


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Receiver:
    holder: list[Receiver] = []

    async def hook(request: web.Request) -> web.Response:
        await holder[0].bodies.put(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/callback", hook)
    holder.append(Receiver(await aiohttp_server(app)))
    return holder[0]


async def last_job(pool: asyncpg.Pool) -> int:
    job_id: int = await pool.fetchval("SELECT max(job_id) FROM jobs")
    return job_id


async def settled(api: Client, account: Account, job_id: int, done: Callable[[Any], bool]) -> Any:
    """Poll GET /v1/jobs/{id} until `done(job)`: the app's worker runs the job meanwhile."""
    headers = {"Authorization": f"Bearer {account.native_key}"}
    deadline = time.monotonic() + 60
    while True:
        response = await api.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status == 200
        job = await response.json()
        if done(job):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def leads(api: Client, account: Account, campaign: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {account.native_key}"}
    response = await api.get(f"/v1/leads?campaign={campaign}&limit=1000", headers=headers)
    assert response.status == 200
    page: list[dict[str, Any]] = (await response.json())["leads"]
    return page


def uploaded(account: Account, campaign: str = "sales") -> dict[str, str]:
    return {
        "status": "success",
        "message": "Data uploaded successfully",
        "campaign": campaign,
        "username": account.name,
    }


def fields(lead: dict[str, Any]) -> tuple[Any, ...]:
    return (lead["phone_numbers"], lead["name"], lead["agent"], lead["skill"], lead["extra"])


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_accepted_upload_runs_and_calls_back(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path, kind: str
) -> None:
    """Data processing, then the leads are in the campaign and the callback body is exact."""
    rows = [
        ["phone_number", "Name", "agent_id", "Skill", "City", "Loan Amount"],
        ["9876543210", "Asha", "agent-1", "billing", "Pune", "5000"],
        ["", "", "", "", "", ""],
        ["+91 98765 43211", "Ravi", "", "", "Delhi", ""],
    ]
    data = write_file(kind, tmp_path / f"leads.{kind}", rows)
    answer = await upload(api, acme, data, f"leads.{kind}", callBackUrl=receiver.url)
    assert answer == (200, ACCEPTED)
    assert await receiver.next() == uploaded(acme)
    assert sorted(fields(lead) for lead in await leads(api, acme, "sales")) == [
        (["+91 98765 43211"], "Ravi", None, None, {"City": "Delhi"}),
        (["9876543210"], "Asha", "agent-1", "billing", {"City": "Pune", "Loan Amount": "5000"}),
    ]


async def test_job_counts_and_upload_ref(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """GET /v1/jobs shows the upload: kind, file name, received and inserted, callback sent."""
    data = write_csv(tmp_path / "march.csv", [["PhoneNumber"], ["9876543210"], ["9876543211"]])
    assert await upload(api, acme, data, "march.csv", callBackUrl=receiver.url) == (200, ACCEPTED)
    await receiver.next()
    job = await settled(
        api, acme, await last_job(pool), lambda j: j["callback"]["state"] == "delivered"
    )
    assert (job["kind"], job["upload_ref"], job["state"]) == (
        "ozonetel_upload",
        "march.csv",
        "done",
    )
    assert (job["counts"]["received"], job["counts"]["inserted"]) == (2, 2)


async def test_rows_are_inserted_without_duplicate_checks(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path
) -> None:
    """The file upload has no checkDuplicate: repeated and existing numbers are all added."""
    rows = [["PhoneNumber"], ["9876543210"], ["09876543210"]]
    first = write_csv(tmp_path / "a.csv", rows)
    for _ in range(2):
        assert await upload(api, acme, first, callBackUrl=receiver.url) == (200, ACCEPTED)
        assert await receiver.next() == uploaded(acme)
    assert len(await leads(api, acme, "sales")) == 4


async def test_agentwise_and_skillwise_uploads(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path
) -> None:
    """Valid agent ids (xlsx) and skills (csv with a BOM) are accepted and stored."""
    agents = write_xlsx(tmp_path / "a.xlsx", [["PhoneNumber", "AgentId"], [9876543210, "agent-1"]])
    skills = write_csv(tmp_path / "s.csv", [["phoneNumber", "skill"], ["9876543211", "billing"]])
    skills_bom = b"\xef\xbb\xbf" + skills
    for campaign, data in (("agents", agents), ("skills", skills_bom)):
        answer = await upload(api, acme, data, campaignName=campaign, callBackUrl=receiver.url)
        assert answer == (200, ACCEPTED)
        assert await receiver.next() == uploaded(acme, campaign)
    [agent_lead] = await leads(api, acme, "agents")
    [skill_lead] = await leads(api, acme, "skills")
    assert fields(agent_lead) == (["9876543210"], None, "agent-1", None, {})
    assert fields(skill_lead) == (["9876543211"], None, None, "billing", {})


@pytest.mark.parametrize("action", ["start", "Start"])
async def test_action_start_starts_the_campaign_after_the_upload(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path, pool: asyncpg.Pool, action: str
) -> None:
    """action=start: the campaign is running once the job has inserted the leads."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    answer = await upload(api, acme, data, action=action, callBackUrl=receiver.url)
    assert answer == (200, ACCEPTED)
    assert await receiver.next() == uploaded(acme)
    assert await campaign_state(api, acme) == "running"
    # Started in the job's transaction, after its leads: the same job id, later positions.
    job_id = str(await last_job(pool))
    types = await pool.fetch(
        "SELECT type FROM events WHERE metadata->>'job_id' = $1 AND stream_id NOT LIKE 'job-%'"
        " ORDER BY position",
        job_id,
    )
    assert [r["type"] for r in types] == ["LeadInserted", "CampaignStarted"]


async def test_plain_upload_leaves_the_campaign_stopped(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path
) -> None:
    """Without action the campaign stays as it was (stopped) after the upload."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, callBackUrl=receiver.url) == (200, ACCEPTED)
    await receiver.next()
    assert await campaign_state(api, acme) == "stopped"


async def test_next_upload_accepted_once_the_first_is_done(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path
) -> None:
    """One upload at a time per campaign: after the callback, the campaign takes another."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    for _ in range(2):
        assert await upload(api, acme, data, callBackUrl=receiver.url) == (200, ACCEPTED)
        assert await receiver.next() == uploaded(acme)


@pytest.mark.parametrize("url", [None, "", "  "])
async def test_no_callback_url(
    api: Client, acme: Account, tmp_path: Path, pool: asyncpg.Pool, url: str | None
) -> None:
    """callBackUrl missing or blank: accepted, the job runs, and no callback is recorded."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, callBackUrl=url) == (200, ACCEPTED)
    job = await settled(api, acme, await last_job(pool), lambda j: j["state"] == "done")
    assert job["callback"] is None
    assert await pool.fetchval("SELECT count(*) FROM callback_outbox") == 0
    assert len(await leads(api, acme, "sales")) == 1


async def test_dummy_callback_url_is_abandoned(
    api: Client, acme: Account, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """A dummy callBackUrl (the vendor allows one) is tried once, refused, and abandoned."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, callBackUrl="dummy") == (200, ACCEPTED)
    job = await settled(
        api,
        acme,
        await last_job(pool),
        lambda j: j["callback"] is not None and j["callback"]["state"] == "abandoned",
    )
    assert job["state"] == "done"
    [attempt] = job["callback"]["attempts"]
    assert (attempt["delivered"], attempt["error"]) == (
        False,
        "callback URL must be http or https with a host",
    )


async def test_private_callback_refused_without_the_setting(
    make_client: Callable[..., Awaitable[Client]],
    receiver: Receiver,
    tmp_path: Path,
    pool: asyncpg.Pool,
) -> None:
    """Without LEDGER_CALLBACK_ALLOW_PRIVATE a loopback callBackUrl is refused, not called."""
    api = await make_client(callback_allow_private=False)
    acme = await make_account(api)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, callBackUrl=receiver.url) == (200, ACCEPTED)
    job = await settled(
        api,
        acme,
        await last_job(pool),
        lambda j: j["callback"] is not None and j["callback"]["state"] == "abandoned",
    )
    assert job["callback"]["attempts"][0]["error"] == callbacks.PRIVATE_TARGET
    assert receiver.bodies.empty()


async def test_failed_upload_calls_back_data_upload_failed(
    make_client: Callable[..., Awaitable[Client]],
    receiver: Receiver,
    tmp_path: Path,
    pool: asyncpg.Pool,
) -> None:
    """A job that cannot complete ends failed and POSTs the vendor's failure body.

    The job is held (no worker) and its stored payload damaged, as a disk or a bad migration
    could; then the real worker step and the real dispatcher run it to the end.
    """
    api = await make_client(worker=False)
    acme = await make_account(api)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    answer = await upload(api, acme, data, action="start", callBackUrl=receiver.url)
    assert answer == (200, ACCEPTED)
    job_id = await last_job(pool)
    await pool.execute(
        "UPDATE job_payloads SET payload = '{\"rows\": 7}' WHERE job_id = $1", job_id
    )
    async with pool.acquire() as conn:
        claim = await jobs.claim_next(conn, "test-worker", 60)
        assert claim is not None
        assert (
            await jobs.run_job(conn, "test-worker", claim, job_kinds(), max_attempts=1) == "failed"
        )
    async with aiohttp.ClientSession() as session:
        assert await callbacks.dispatch_due(pool, poster(session), allow_private=True) == 1
    assert await receiver.next() == {
        "status": "error",
        "message": "Data upload failed",
        "campaign": "sales",
        "username": acme.name,
    }
    # Nothing of the job's work survived: no leads, and action=start was not applied.
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
    assert await campaign_state(api, acme) == "stopped"
    # A failed upload no longer blocks the campaign.
    assert await upload(api, acme, data) == (200, ACCEPTED)


async def test_username_echoed_as_sent(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path
) -> None:
    """The callback names the username exactly as the request sent it."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    answer = await upload(api, acme, data, username="AcMe", callBackUrl=receiver.url)
    assert answer == (200, ACCEPTED)
    assert (await receiver.next())["username"] == "AcMe"


async def test_fifty_thousand_rows(
    api: Client, acme: Account, receiver: Receiver, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """The documented data limit, 50,000 rows, is accepted and inserted whole (its speed is
    bench/bulk_upload.py's to measure)."""
    rows: list[list[str | int | float | None]] = [["PhoneNumber", "Name", "City"]]
    rows += [[f"9{i:09d}", f"Lead {i}", "Pune"] for i in range(50_000)]
    data = write_csv(tmp_path / "big.csv", rows)
    assert await upload(api, acme, data, callBackUrl=receiver.url) == (200, ACCEPTED)
    assert await receiver.next() == uploaded(acme)
    assert await pool.fetchval("SELECT count(*) FROM leads") == 50_000


def _serve(database_url: str) -> subprocess.Popen[bytes]:
    """A real `lead-ledger serve` on the test's database: its worker claims jobs and its
    dispatcher sends callbacks (to local addresses). The job lease is the default (300 s):
    a job it dies holding is claimable again as soon as its database session is gone."""
    served = serve_process(database_url, LEDGER_CALLBACK_ALLOW_PRIVATE="1")
    return served.process


async def _until(pool: asyncpg.Pool, sql: str, wait: float = 60) -> None:
    deadline = time.monotonic() + wait
    while not await pool.fetchval(sql):
        assert time.monotonic() < deadline, f"timed out waiting for: {sql}"
        await asyncio.sleep(0.05)


async def test_a_server_killed_mid_upload_loses_nothing_and_another_finishes_it(
    make_client: Callable[..., Awaitable[Client]],
    receiver: Receiver,
    tmp_path: Path,
    pool: asyncpg.Pool,
    database_url: str,
) -> None:
    """kill -9 of the `serve` running a 50,000-row upload: nothing of it is visible, no
    callback went out; a second server runs it again at once (not after the dead one's
    five-minute lease), whole, and the callback arrives once."""
    front = await make_client(worker=False)  # accepts the upload; runs no job itself
    account = await make_account(front)
    rows: list[list[str | int | float | None]] = [["PhoneNumber", "Name"]]
    rows += [[f"9{i:09d}", f"Lead {i}"] for i in range(50_000)]
    data = write_csv(tmp_path / "big.csv", rows)
    assert await upload(front, account, data, callBackUrl=receiver.url) == (200, ACCEPTED)
    job_id = await last_job(pool)

    doomed = _serve(database_url)
    try:
        await _until(pool, "SELECT EXISTS (SELECT FROM job_queue WHERE state = 'running')")
        # Its run transaction has written: the leads are being appended.
        await _until(
            pool,
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL)",
        )
        await asyncio.sleep(0.3)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    stream = f"job-{job_id}"
    types = "SELECT array_agg(type ORDER BY stream_version) FROM events WHERE stream_id = $1"
    assert await pool.fetchval(types, stream) == ["JobSubmitted"], "killed too late"
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
    assert await pool.fetchval("SELECT count(*) FROM callback_outbox") == 0
    assert receiver.bodies.empty()

    survivor = _serve(database_url)
    try:
        assert await receiver.next() == uploaded(account)
        await _until(pool, "SELECT bool_and(delivered_at IS NOT NULL) FROM callback_outbox")
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=60)
    assert await pool.fetchval(types, stream) == [
        "JobSubmitted",
        "JobCompleted",
        "CallbackAttempted",
    ]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 50_000
    assert await pool.fetchval("SELECT count(DISTINCT phone_numbers) FROM leads") == 50_000
    assert await pool.fetchval("SELECT attempts FROM job_queue") == 2
    assert await pool.fetchval("SELECT count(*) FROM callback_outbox") == 1
    assert receiver.bodies.empty()
