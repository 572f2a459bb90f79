"""GET /v1/jobs/{id}, with the app's own background worker and callback dispatcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lead_ledger.api import jobs as jobs_api
from lead_ledger.api.app import create_app
from lead_ledger.api.keys import POOL
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import LeadFields
from lead_ledger.service import jobs
from lead_ledger.service.jobs.insert_leads_kind import InsertLeadsPayload
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def with_jobs(app: web.Application) -> web.Application:
    """The app with the jobs module, unless app.py already sets it up."""
    if not any(r.resource and r.resource.canonical == "/v1/jobs/{id}" for r in app.router.routes()):
        jobs_api.setup(app)
    return app


@pytest.fixture
async def api(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real app (callbacks to private addresses allowed, for the local receiver)."""
    allowed = msgspec.structs.replace(settings, callback_allow_private=True)
    return await aiohttp_client(with_jobs(create_app(allowed, database_url)))


class Tenant(msgspec.Struct):
    account_id: int
    campaign_id: int
    headers: dict[str, str]


async def tenant(api: Client, name: str) -> Tenant:
    """An account with a native key and a campaign, made through the admin API."""
    account = await (
        await api.post("/v1/admin/accounts", json={"name": name}, headers=ADMIN)
    ).json()
    base = f"/v1/admin/accounts/{account['id']}"
    key = await (
        await api.post(f"{base}/credentials", json={"api": "native"}, headers=ADMIN)
    ).json()
    campaign = await (
        await api.post(f"{base}/campaigns", json={"name": "sales"}, headers=ADMIN)
    ).json()
    return Tenant(account["id"], campaign["id"], {"Authorization": f"Bearer {key['key']}"})


async def submit(api: Client, who: Tenant, rows: list[LeadFields], url: str | None = None) -> int:
    assert api.app is not None
    pool: asyncpg.Pool = api.app[POOL]
    payload = InsertLeadsPayload(campaign_id=who.campaign_id, rows=rows)
    ctx = Context(actor=Actor(dialect="native", account_id=who.account_id), request_id="t")
    async with pool.acquire() as conn, write_transaction(conn):
        return await jobs.submit_job(
            conn,
            ctx,
            account_id=who.account_id,
            dialect="native",
            kind="insert_leads",
            campaign_id=who.campaign_id,
            payload=msgspec.json.encode(payload),
            received=len(rows),
            callback_url=url,
            upload_ref="phonebook-7",
        )


async def settled(api: Client, who: Tenant, job_id: int, done: Callable[[Any], bool]) -> Any:
    """Poll the job until `done(body)`: the app's worker runs it in the background."""
    deadline = time.monotonic() + 30
    while True:
        response = await api.get(f"/v1/jobs/{job_id}", headers=who.headers)
        assert response.status == 200
        body = await response.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def test_job_runs_in_the_background_and_reports(api: Client) -> None:
    """A submitted job is run by the app's worker; GET shows state, counts, rejects, timings."""
    acme = await tenant(api, "acme")
    rows = [LeadFields(phone_numbers=["9000000001"]), LeadFields(phone_numbers=["9000000001"])]
    job_id = await submit(api, acme, rows)
    body = await settled(api, acme, job_id, lambda b: b["state"] == "done")
    assert body["counts"] == {
        "received": 2,
        "inserted": 1,
        "updated": 0,
        "reassigned": 0,
        "rejected": 1,
    }
    (lead,) = (await (await api.get("/v1/leads", headers=acme.headers)).json())["leads"]
    assert body["rejected_rows"] == [
        {
            "row_number": 2,
            "row": {"phone_numbers": "9000000001"},
            "description": "duplicate phone number in campaign",
            "existing_lead_ids": [lead["lead_id"]],
        }
    ]
    assert (body["job_id"], body["kind"], body["upload_ref"]) == (
        job_id,
        "insert_leads",
        "phonebook-7",
    )
    assert body["timings"]["completed_at"] >= body["timings"]["submitted_at"]
    assert body["callback"] is None


async def test_job_callback_delivered_by_the_app(
    api: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """With callback_allow_private, the app's dispatcher POSTs the outcome to the callback URL."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/done", hook)
    server = await aiohttp_server(receiver)
    acme = await tenant(api, "acme")
    url = str(server.make_url("/done"))
    job_id = await submit(api, acme, [LeadFields(phone_numbers=["9000000002"])], url)
    body = await settled(
        api, acme, job_id, lambda b: b["callback"] and b["callback"]["state"] == "delivered"
    )
    assert [
        (a["attempt"], a["status_code"], a["delivered"]) for a in body["callback"]["attempts"]
    ] == [(1, 200, True)]
    assert received[0]["job_id"] == job_id
    assert received[0]["state"] == "done"


async def test_job_of_another_account_is_not_found(api: Client) -> None:
    """Another account's job answers 404 problem+json, exactly like a missing one."""
    acme = await tenant(api, "acme")
    other = await tenant(api, "other")
    job_id = await submit(api, acme, [LeadFields(phone_numbers=["9000000003"])])
    foreign = await api.get(f"/v1/jobs/{job_id}", headers=other.headers)
    missing = await api.get(f"/v1/jobs/{job_id + 100}", headers=acme.headers)
    for response, wanted in ((foreign, job_id), (missing, job_id + 100)):
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        assert (await response.json())["detail"] == f"no job {wanted}"


@pytest.mark.parametrize("job_id", ["abc", "0", "99999999999999999999"])
async def test_impossible_job_id_is_not_found(api: Client, job_id: str) -> None:
    """An id that cannot name a job is a 404, not a 400 or a 500."""
    acme = await tenant(api, "acme")
    response = await api.get(f"/v1/jobs/{job_id}", headers=acme.headers)
    assert response.status == 404


async def test_job_needs_a_native_key(api: Client) -> None:
    """Without a native key: 401 with a Bearer challenge."""
    response = await api.get("/v1/jobs/1")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_jobs_are_listed_newest_first_with_filters_and_paging(api: Client) -> None:
    """GET /v1/jobs finds the account's jobs (never another's), newest first, by state, dialect,
    campaign and submission time, a page at a time; each entry is the job's view without its
    rejected rows."""
    acme, other = await tenant(api, "acme"), await tenant(api, "other")
    ids = [
        await submit(api, acme, [LeadFields(phone_numbers=[f"98765432{i:02d}"])]) for i in range(3)
    ]
    await submit(api, other, [LeadFields(phone_numbers=["9876543299"])])
    for job_id in ids:
        await settled(api, acme, job_id, lambda body: body["state"] == "done")

    async def listed(query: str = "", status: int = 200) -> Any:
        response = await api.get(f"/v1/jobs{query}", headers=acme.headers)
        body = await response.json()
        assert response.status == status, body
        return body

    page = await listed()
    assert [job["job_id"] for job in page["jobs"]] == ids[::-1]
    assert page["next_before"] is None
    single = await (await api.get(f"/v1/jobs/{ids[0]}", headers=acme.headers)).json()
    assert page["jobs"][-1] == {k: v for k, v in single.items() if k != "rejected_rows"}

    first = await listed("?limit=2")
    assert [job["job_id"] for job in first["jobs"]] == ids[:0:-1]
    rest = await listed(f"?limit=2&before={first['next_before']}")
    assert ([job["job_id"] for job in rest["jobs"]], rest["next_before"]) == ([ids[0]], None)

    assert len((await listed("?state=done&dialect=native&campaign=sales"))["jobs"]) == 3
    assert (await listed("?state=queued"))["jobs"] == []
    assert (await listed("?dialect=flexydial"))["jobs"] == []
    assert (await listed("?from=2999-01-01T00:00:00"))["jobs"] == []
    assert len((await listed("?to=2999-01-01T00:00:00Z"))["jobs"]) == 3
    assert (await listed("?campaign=nope", 404))["parameter"] == "campaign"
    for bad in ("state=finished", "limit=0", "before=0", "colour=red", "from=yesterday"):
        problem = await listed(f"?{bad}", 400)
        assert problem["parameter"] == bad.split("=")[0]


async def test_listing_jobs_needs_a_native_key(api: Client) -> None:
    """Without a key: the native 401."""
    response = await api.get("/v1/jobs")
    assert response.status == 401
    assert response.content_type == "application/problem+json"
