"""The dialect edge: an unexpected failure answers in the route's own dialect shape, is logged
once with the request id, and never shows a traceback to the caller.

The failure is real: a table the route's service reads is renamed away for the one request, so
the service raises from PostgreSQL (UndefinedTableError) exactly as it would on a broken
database; the table is put back before the test ends.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import aiohttp
import asyncpg
import msgspec
import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs

from lead_ledger.api.app import create_app
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DIALECTS = ("native", "vicidial", "jtel", "flexydial", "ozonetel")
OOPS = "Oops Something went wrong, Please contact Administrator"


class World(NamedTuple):
    """An account made through the admin API: its id, its campaign `sales` and a key per
    dialect (shared with test_hostile_inputs.py)."""

    account_id: int
    campaign_id: int
    keys: dict[str, str]


async def account_with_every_key(api: Client) -> World:
    """An account with a campaign and a key of every dialect, made through the admin API."""
    created = await api.post("/v1/admin/accounts", json={"name": "acme"}, headers=ADMIN)
    account = await created.json()
    keys: dict[str, str] = {}
    for dialect in DIALECTS:
        issued = await api.post(
            "/v1/admin/accounts/acme/credentials", json={"api": dialect}, headers=ADMIN
        )
        keys[dialect] = (await issued.json())["key"]
    campaign = await api.post(
        "/v1/admin/accounts/acme/campaigns", json={"name": "sales"}, headers=ADMIN
    )
    assert campaign.status == 201, await campaign.text()
    return World(account["id"], (await campaign.json())["id"], keys)


def _upload_form(key: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("username", "acme")
    form.add_field("apiKey", key)
    form.add_field("campaignName", "sales")
    form.add_field("file", io.BytesIO(b"phoneNumber\n9876543210\n"), filename="numbers.csv")
    return form


PROBLEM_500: Final = {
    "type": "about:blank",
    "title": "Internal Server Error",
    "status": 500,
    "detail": "internal error",
}


@dataclass(frozen=True)
class Case:
    """A route, the table its service reads that goes missing, and the answer expected."""

    name: str
    table: str
    method: str
    path: str
    dialect: str
    body: Any
    expected: Any


CASES: Final = [
    Case(
        "native",
        "leads",
        "GET",
        "/v1/leads/1",
        "native",
        None,
        PROBLEM_500,
    ),
    Case(
        "native",
        "jobs",
        "GET",
        "/v1/jobs/1",
        "native",
        None,
        PROBLEM_500,
    ),
    Case(
        "admin",
        "accounts",
        "GET",
        "/v1/admin/accounts",
        "admin",
        None,
        PROBLEM_500,
    ),
    Case(
        "vicidial",
        "settings",
        "POST",
        "/vicidial/leads/archive",
        "vicidial",
        {"insert_leads": True, "update_leads": True, "delete_leads": True, "lead_ids": [1]},
        {"message": "An error has occurred.", "lead_errors": 0, "lead_ids": []},
    ),
    Case(
        "jtel",
        "leads",
        "GET",
        "/rest/v1.0/{account}/dialler/contacts/1",
        "jtel",
        None,
        {"status": 500, "error": "Internal server error"},
    ),
    Case(
        "flexydial",
        "campaigns",
        "POST",
        "/api/bulkphonebookupload/v1/",
        "flexydial",
        {"campaign": "sales", "bulk_data": [{"numeric": "9876543210"}]},
        {"errors": OOPS},
    ),
    Case(
        "ozonetel",
        "agents",
        "POST",
        "/ca_apis/AddCampaignData",
        "ozonetel",
        {"userName": "acme", "campaignName": "sales", "phoneNumber": "9876543210"},
        {"status": "error", "message": "Internal Server Error"},
    ),
    Case(
        "ozonetel bulk",
        "skills",
        "POST",
        "/endpoint/dailer/data/bulk/upload",
        "ozonetel",
        "form",
        {"status": "error", "message": "Internal Server Error"},
    ),
]


def _headers(dialect: str, keys: dict[str, str]) -> dict[str, str]:
    match dialect:
        case "admin":
            return ADMIN
        case "native" | "jtel":
            return {"Authorization": f"Bearer {keys[dialect]}"}
        case "vicidial":
            return {"Authorization": f"Key={keys[dialect]}"}
        case "flexydial":
            return {"Authorization": f"Token {keys[dialect]}"}
        case _:
            return {"apiKey": keys["ozonetel"]}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_an_unexpected_failure_answers_in_the_dialect_shape(
    client: Client, owner_database_url: str, case: Case
) -> None:
    """A service that raises: the dialect's own 500 body, no traceback, one log line with the id."""
    account_id, _, keys = await account_with_every_key(client)
    request_id = f"edge-{case.name.replace(' ', '-')}"
    headers = {**_headers(case.dialect, keys), "X-Request-ID": request_id}
    kwargs: dict[str, Any] = {"headers": headers}
    if case.body == "form":
        kwargs["data"] = _upload_form(keys["ozonetel"])
    elif case.body is not None:
        kwargs["json"] = case.body
    table = case.table
    conn = await asyncpg.connect(owner_database_url)  # only the owner may rename a table
    try:
        await conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_gone"')
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            response = await client.request(
                case.method, case.path.format(account=account_id), **kwargs
            )
            text = await response.text()
    finally:
        await conn.execute(f'ALTER TABLE "{table}_gone" RENAME TO "{table}"')
        await conn.close()

    assert response.status == 500, text
    assert await response.json() == case.expected
    assert "Traceback" not in text
    assert "UndefinedTable" not in text
    assert response.headers["X-Request-ID"] == request_id
    failures = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert len(failures) == 1, logs
    assert failures[0]["request_id"] == request_id
    assert failures[0]["log_level"] == "error"
    assert failures[0].get("exc_info") is True  # the traceback goes to the log, not the body


async def test_a_body_over_the_limit_answers_in_the_dialect_shape(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """413 from the edge: the admin API's problem+json and AddCampaignData's vendor reply."""
    small = msgspec.structs.replace(settings, max_body_bytes=1024)
    client = await aiohttp_client(create_app(small, database_url))
    too_large = b"{" + b" " * 2048 + b"}"
    admin = await client.post("/v1/admin/accounts", data=too_large, headers=ADMIN)
    assert admin.status == 413
    assert admin.content_type == "application/problem+json"
    assert (await admin.json())["status"] == 413
    ozonetel = await client.post("/ca_apis/AddCampaignData", data=too_large)
    assert ozonetel.status == 413
    assert await ozonetel.json() == {"status": "error", "message": "Data limit exceeded"}


@pytest.mark.parametrize(
    ("path", "authorization"),
    [("/ca_apis/AddCampaignData", ""), ("/v1/admin/accounts", f"Bearer {ADMIN_TOKEN}")],
)
async def test_a_client_gone_halfway_through_its_body_is_no_server_failure(
    database_url: str, settings: Settings, path: str, authorization: str
) -> None:
    """A client that closes its connection while the handler waits for the rest of its body:
    no unhandled_error, and the request is logged and counted as 499 (the client went away),
    never as a 500. Served as `serve` serves (handlers not cancelled when a client leaves)."""
    runner = web.AppRunner(create_app(settings, database_url), handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        before = await _requests_counted(f"http://{host}:{port}/metrics", path)
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            reader, writer = await asyncio.open_connection(host, port)
            head = (
                f"POST {path} HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\n"
                f"Authorization: {authorization}\r\nContent-Length: 100010\r\n\r\n"
            )
            writer.write(head.encode() + b"{" + b" " * 999)
            await writer.drain()
            await asyncio.sleep(0.3)  # the handler now waits for the rest of the body
            writer.close()
            await writer.wait_closed()
            for _ in range(250):
                if any(entry["event"] == "request" for entry in logs):
                    break
                await asyncio.sleep(0.02)
        statuses = [entry["status"] for entry in logs if entry["event"] == "request"]
        assert statuses == [499], logs
        assert [entry for entry in logs if entry["event"] == "unhandled_error"] == []
        after = await _requests_counted(f"http://{host}:{port}/metrics", path)
        assert (after[499] - before[499], after[500] - before[500]) == (1, 0)
        del reader
    finally:
        await runner.cleanup()


async def _requests_counted(metrics_url: str, route: str) -> dict[int, float]:
    """The process's count of POSTs to `route` answered 499 and 500 (the registry is the
    process's: other tests' requests are in it too)."""
    async with aiohttp.ClientSession() as session, session.get(metrics_url) as response:
        text = await response.text()
    counted = {499: 0.0, 500: 0.0}
    for status in counted:
        series = (
            f'lead_ledger_http_requests_total{{method="POST",route="{route}",status="{status}"}}'
        )
        for line in text.splitlines():
            if line.startswith(series + " "):
                counted[status] = float(line.split()[-1])
    return counted
