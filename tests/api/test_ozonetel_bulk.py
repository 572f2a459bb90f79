"""Ozonetel bulk file upload (seed 001): every refusal through the real app, with real files.

The job side (completion, callbacks, action=start) is in test_ozonetel_bulk_jobs.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import openpyxl
import pytest
from aiohttp import web

from lead_ledger.api import jobs as jobs_api
from lead_ledger.api import ozonetel_bulk
from lead_ledger.api.app import create_app
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client, fresh_minute

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PATH = ozonetel_bulk.PATH
ACCEPTED = {"status": "success", "message": "Data processing"}
AUTH_FAILED = {"status": "error", "message": "Authentication failed"}
FILE_MANDATORY = {"status": "error", "message": "File is mandatory"}
NOT_EXCEL = {"status": "error", "message": "Only excel files are allowed"}
NOT_FOUND = {"status": "error", "message": "Campaign not found"}
RUNNING = {"status": "error", "message": "Campaign is running"}
RATE_LIMITED = {"status": "error", "message": "Request limit exhausted"}

Cell = str | int | float | None
GOOD_ROWS: list[list[Cell]] = [["PhoneNumber", "Name"], ["9876543210", "Asha"]]


def error(message: str) -> dict[str, str]:
    return {"status": "error", "message": message}


def write_csv(path: Path, rows: Sequence[Sequence[Cell]], *, bom: bool = False) -> bytes:
    """A real csv file written by the csv module; its bytes."""
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path.read_bytes()


def write_xlsx(path: Path, rows: Sequence[Sequence[Cell]]) -> bytes:
    """A real workbook written by openpyxl; its bytes."""
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path.read_bytes()


def write_file(kind: str, path: Path, rows: Sequence[Sequence[Cell]]) -> bytes:
    return write_csv(path, rows) if kind == "csv" else write_xlsx(path, rows)


def without_worker(app: web.Application) -> web.Application:
    """The app without its background job worker and dispatcher: submitted jobs stay queued,
    as they do while every worker is busy."""
    app.cleanup_ctx.remove(jobs_api.background)
    return app


@pytest.fixture
async def make_client(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Callable[..., Awaitable[Client]]:
    """Builds app instances on this test's one database; `worker=False` leaves jobs queued."""

    async def make(*, worker: bool = True, **changes: Any) -> Client:
        changed = msgspec.structs.replace(settings, **({"callback_allow_private": True} | changes))
        app = create_app(changed, database_url)
        return await aiohttp_client(app if worker else without_worker(app))

    return make


@pytest.fixture
async def api(make_client: Callable[..., Awaitable[Client]]) -> Client:
    """The real app with its worker, callbacks to local addresses allowed."""
    return await make_client()


@dataclass(frozen=True)
class Account:
    name: str
    key: str
    native_key: str


async def admin(api: Client, method: str, path: str, body: object = None) -> Any:
    response = await api.request(method, f"/v1/admin{path}", json=body, headers=ADMIN)
    assert response.status < 300, await response.text()
    return await response.json()


async def make_account(api: Client, name: str = "acme", per_minute: int | None = 1000) -> Account:
    """An account with ozonetel and native keys, campaigns of every kind, an agent and a skill;
    `per_minute=None` keeps the default bulk rate limit (1)."""
    await admin(api, "POST", "/accounts", {"name": name, "default_region": "IN"})
    key = (await admin(api, "POST", f"/accounts/{name}/credentials", {"api": "ozonetel"}))["key"]
    native = (await admin(api, "POST", f"/accounts/{name}/credentials", {"api": "native"}))["key"]
    for campaign in (
        {"name": "sales"},
        {"name": "second"},
        {"name": "support", "direction": "inbound"},
        {"name": "agents", "assignment": "agentwise"},
        {"name": "skills", "assignment": "skillwise"},
    ):
        await admin(api, "POST", f"/accounts/{name}/campaigns", campaign)
    await admin(api, "POST", f"/accounts/{name}/agents", {"agent_id": "agent-1"})
    await admin(api, "POST", f"/accounts/{name}/skills", {"name": "billing"})
    if per_minute is not None:
        limits = {"rate_limits": {"ozonetel_bulk_per_minute": per_minute}}
        await admin(api, "PATCH", f"/accounts/{name}/settings", limits)
    return Account(name=name, key=key, native_key=native)


@pytest.fixture
async def acme(api: Client) -> Account:
    return await make_account(api)


def form(
    account: Account | None,
    file: bytes | None,
    filename: str = "leads.csv",
    **fields: str | None,
) -> aiohttp.FormData:
    """The vendor's multipart form; a field given as None is left out."""
    values: dict[str, str | None] = {
        "username": account.name if account else None,
        "apiKey": account.key if account else None,
        "campaignName": "sales",
        "callBackUrl": "http://example.invalid/callback",
    } | fields
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in values.items():
        if value is not None:
            data.add_field(name, value)
    if file is not None:
        # A stream, as a client sends a file (aiohttp warns on a large body given as bytes).
        stream = io.BytesIO(file)
        data.add_field("file", stream, filename=filename, content_type="application/octet-stream")
    return data


async def upload(
    api: Client,
    account: Account | None,
    file: bytes | None,
    filename: str = "leads.csv",
    **fields: str | None,
) -> tuple[int, Any]:
    response = await api.post(PATH, data=form(account, file, filename, **fields))
    assert response.content_type == "application/json"
    return response.status, await response.json()


async def job_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM jobs")
    return count


async def campaign_state(api: Client, account: Account, campaign: str = "sales") -> str:
    state: str = (await admin(api, "GET", f"/accounts/{account.name}/campaigns/{campaign}"))[
        "state"
    ]
    return state


# --- authentication -----------------------------------------------------------------------------


async def test_wrong_key(api: Client, acme: Account, tmp_path: Path, pool: asyncpg.Pool) -> None:
    """An apiKey that is no credential: Authentication failed, nothing submitted."""
    wrong = Account(acme.name, "not-a-key", acme.native_key)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, wrong, data) == (200, AUTH_FAILED)
    assert await job_count(pool) == 0


async def test_key_of_another_dialect(api: Client, acme: Account, tmp_path: Path) -> None:
    """The account's native key is no ozonetel credential: Authentication failed."""
    native = Account(acme.name, acme.native_key, acme.native_key)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, native, data) == (200, AUTH_FAILED)


async def test_username_not_the_keys_account(api: Client, acme: Account, tmp_path: Path) -> None:
    """acme's key with another existing account's name: Authentication failed."""
    other = await make_account(api, "other")
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, Account(other.name, acme.key, ""), data) == (200, AUTH_FAILED)
    assert await upload(api, Account(acme.name, other.key, ""), data) == (200, AUTH_FAILED)


async def test_revoked_key(api: Client, tmp_path: Path) -> None:
    """A revoked ozonetel key: Authentication failed."""
    await admin(api, "POST", "/accounts", {"name": "acme"})
    issued = await admin(api, "POST", "/accounts/acme/credentials", {"api": "ozonetel"})
    response = await api.delete(
        f"/v1/admin/accounts/acme/credentials/{issued['id']}", headers=ADMIN
    )
    assert response.status == 204
    await admin(api, "POST", "/accounts/acme/campaigns", {"name": "sales"})
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, Account("acme", issued["key"], ""), data) == (200, AUTH_FAILED)


@pytest.mark.parametrize("field", ["username", "apiKey"])
@pytest.mark.parametrize("value", [None, "", "   "])
async def test_missing_credentials(
    api: Client, acme: Account, tmp_path: Path, field: str, value: str | None
) -> None:
    """A username or apiKey missing, empty or blank: Authentication failed."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    missing: dict[str, Any] = {field: value}
    assert await upload(api, acme, data, **missing) == (200, AUTH_FAILED)


async def test_authentication_comes_before_the_file(api: Client, acme: Account) -> None:
    """No key and no file: the caller is refused first."""
    assert await upload(api, None, None) == (200, AUTH_FAILED)


async def test_username_in_any_case(api: Client, acme: Account, tmp_path: Path) -> None:
    """Account names are case-insensitive: ACME with acme's key is accepted."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, username="ACME") == (200, ACCEPTED)


# --- the file -----------------------------------------------------------------------------------


async def test_file_missing(api: Client, acme: Account, pool: asyncpg.Pool) -> None:
    """No file part: File is mandatory."""
    assert await upload(api, acme, None) == (200, FILE_MANDATORY)
    assert await job_count(pool) == 0


async def test_file_of_zero_bytes(api: Client, acme: Account) -> None:
    """A file part with no bytes (an empty file input) is no file: File is mandatory."""
    assert await upload(api, acme, b"") == (200, FILE_MANDATORY)


async def test_pdf_is_not_excel(api: Client, acme: Account, tmp_path: Path) -> None:
    """PDF bytes, even named .xlsx: Only excel files are allowed."""
    path = tmp_path / "leads.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\x00\x01\x02trailer\n")
    assert await upload(api, acme, path.read_bytes(), "leads.xlsx") == (200, NOT_EXCEL)


async def test_docx_like_zip_is_not_excel(api: Client, acme: Account, tmp_path: Path) -> None:
    """A zip holding a Word document is not a workbook: Only excel files are allowed."""
    path = tmp_path / "leads.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    assert await upload(api, acme, path.read_bytes(), "leads.xlsx") == (200, NOT_EXCEL)


async def test_xlsx_named_csv_is_accepted(api: Client, acme: Account, tmp_path: Path) -> None:
    """Content decides: a csv sent as leads.xlsx is accepted."""
    data = write_csv(tmp_path / "leads.xlsx", GOOD_ROWS)
    assert await upload(api, acme, data, "leads.xlsx") == (200, ACCEPTED)


async def test_csv_named_xlsx_is_accepted(api: Client, acme: Account, tmp_path: Path) -> None:
    """Content decides: a workbook sent as leads.csv is accepted."""
    data = write_xlsx(tmp_path / "leads.xlsx", GOOD_ROWS)
    assert await upload(api, acme, data, "leads.csv") == (200, ACCEPTED)


async def test_format_comes_before_the_campaign(api: Client, acme: Account) -> None:
    """Not excel and an unknown campaign: the file's format is refused first."""
    answer = await upload(api, acme, b"%PDF\x00", campaignName="nowhere")
    assert answer == (200, NOT_EXCEL)


# --- the campaign -------------------------------------------------------------------------------


@pytest.mark.parametrize("campaign", [None, "", "nowhere", "Sales", "support", "theirs"])
async def test_campaign_not_found(
    api: Client, acme: Account, tmp_path: Path, campaign: str | None
) -> None:
    """Missing, unknown, differently cased, inbound or another account's: Campaign not found."""
    other = await make_account(api, "other")
    await admin(api, "POST", f"/accounts/{other.name}/campaigns", {"name": "theirs"})
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, campaignName=campaign) == (200, NOT_FOUND)


@pytest.mark.parametrize("action", [None, "start", "START", "pause"])
async def test_campaign_running(
    api: Client, acme: Account, tmp_path: Path, pool: asyncpg.Pool, action: str | None
) -> None:
    """A running campaign takes no upload unless action is stop: Campaign is running."""
    await admin(api, "PATCH", "/accounts/acme/campaigns/sales", {"state": "running"})
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, action=action) == (200, RUNNING)
    assert await job_count(pool) == 0
    assert await campaign_state(api, acme) == "running"


@pytest.mark.parametrize("action", ["stop", "Stop", " STOP "])
async def test_running_campaign_with_stop_is_stopped_and_accepted(
    api: Client, acme: Account, tmp_path: Path, pool: asyncpg.Pool, action: str
) -> None:
    """action=stop (any case) stops a running campaign at once and accepts the upload."""
    await admin(api, "PATCH", "/accounts/acme/campaigns/sales", {"state": "running"})
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, action=action) == (200, ACCEPTED)
    assert await campaign_state(api, acme) == "stopped"
    stopped = await pool.fetchval("SELECT count(*) FROM events WHERE type = 'CampaignStopped'")
    assert (stopped, await job_count(pool)) == (1, 1)


async def test_stop_on_a_stopped_campaign_records_nothing(
    api: Client, acme: Account, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """action=stop on a stopped campaign: accepted, and no CampaignStopped is recorded."""
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data, action="stop") == (200, ACCEPTED)
    stopped = await pool.fetchval("SELECT count(*) FROM events WHERE type = 'CampaignStopped'")
    assert stopped == 0


# --- one upload per campaign at a time ------------------------------------------------------------


async def test_second_upload_while_the_first_is_processing(
    make_client: Callable[..., Awaitable[Client]], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """While a campaign's upload is queued, another to it is refused; other campaigns are not."""
    api = await make_client(worker=False)
    acme = await make_account(api)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert await upload(api, acme, data) == (200, ACCEPTED)
    busy = error("Upload is in progress for campaign sales")
    assert await upload(api, acme, data) == (200, busy)
    assert await upload(api, acme, data, action="stop") == (200, busy)
    assert await upload(api, acme, data, campaignName="second") == (200, ACCEPTED)
    assert await job_count(pool) == 2


async def test_concurrent_uploads_to_one_campaign(
    make_client: Callable[..., Awaitable[Client]], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """Eight uploads at once through two app instances: exactly one is accepted."""
    first = await make_client(worker=False)
    second = await make_client(worker=False)
    acme = await make_account(first)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    answers = await asyncio.gather(*(upload(client, acme, data) for client in (first, second) * 4))
    busy = (200, error("Upload is in progress for campaign sales"))
    assert sorted(answers, key=lambda a: a[1]["message"]) == [(200, ACCEPTED)] + [busy] * 7
    assert await job_count(pool) == 1


# --- the rate limit -----------------------------------------------------------------------------


async def test_rate_limit(api: Client, tmp_path: Path, pool: asyncpg.Pool) -> None:
    """Over ozonetel_bulk_per_minute (default 1): 429 Request limit exhausted."""
    acme = await make_account(api, per_minute=None)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    await fresh_minute()
    assert await upload(api, acme, data) == (200, ACCEPTED)
    response = await api.post(PATH, data=form(acme, data, campaignName="second"))
    assert (response.status, await response.json()) == (429, RATE_LIMITED)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert await job_count(pool) == 1


async def test_refused_requests_do_not_use_up_the_limit(api: Client, tmp_path: Path) -> None:
    """Refusals (not found, running, invalid file) are not counted: the upload after them is."""
    acme = await make_account(api, per_minute=None)
    await admin(api, "PATCH", "/accounts/acme/campaigns/second", {"state": "running"})
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    bad = write_csv(tmp_path / "bad.csv", [["PhoneNumber"], ["12"]])
    await fresh_minute()
    assert (await upload(api, acme, data, campaignName="nowhere"))[1] == NOT_FOUND
    assert (await upload(api, acme, data, campaignName="second"))[1] == RUNNING
    invalid = error("Invalid phone no.s found at rows [1] for campaign sales")
    assert await upload(api, acme, bad) == (200, invalid)
    assert await upload(api, acme, data) == (200, ACCEPTED)
    limited = await upload(api, acme, data, campaignName="second", action="stop")
    assert limited == (429, RATE_LIMITED)
    assert await campaign_state(api, acme, "second") == "running"  # refused: nothing applied


async def test_rate_limit_shared_by_two_app_instances(
    make_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    """The limit is counted in PostgreSQL: the second instance sees the first one's upload."""
    first = await make_client()
    second = await make_client()
    acme = await make_account(first, per_minute=None)
    data = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    await fresh_minute()
    assert await upload(first, acme, data) == (200, ACCEPTED)
    assert await upload(second, acme, data, campaignName="second") == (429, RATE_LIMITED)


# --- bodies that are not a well-formed form -------------------------------------------------------


async def test_json_body(api: Client, acme: Account) -> None:
    """A JSON body is not multipart: no field can be read, so Authentication failed."""
    response = await api.post(PATH, json={"username": acme.name, "apiKey": acme.key})
    assert (response.status, await response.json()) == (200, AUTH_FAILED)


async def test_urlencoded_body(api: Client, acme: Account) -> None:
    """An urlencoded form is read, but cannot carry a file: File is mandatory."""
    fields = {"username": acme.name, "apiKey": acme.key, "campaignName": "sales"}
    response = await api.post(PATH, data=fields)
    assert (response.status, await response.json()) == (200, FILE_MANDATORY)


async def test_urlencoded_body_with_a_wrong_key(api: Client, acme: Account) -> None:
    """An urlencoded form's credentials are checked first: Authentication failed."""
    fields = {"username": acme.name, "apiKey": "wrong", "file": "PhoneNumber"}
    response = await api.post(PATH, data=fields)
    assert (response.status, await response.json()) == (200, AUTH_FAILED)


async def test_no_body(api: Client) -> None:
    """No body and no Content-Type: Authentication failed."""
    response = await api.post(PATH)
    assert (response.status, await response.json()) == (200, AUTH_FAILED)


async def test_multipart_cut_off_after_the_credentials(api: Client, acme: Account) -> None:
    """Credentials read whole, then the body breaks inside the file: File is mandatory."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="username"\r\n\r\n{acme.name}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="apiKey"\r\n\r\n{acme.key}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="campaignName"\r\n\r\nsales\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        "\r\nPhoneNumber\r\n9876543210\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = await api.post(PATH, data=body, headers=headers)
    assert (response.status, await response.json()) == (200, FILE_MANDATORY)


async def test_multipart_without_boundary(api: Client) -> None:
    """multipart/form-data without a boundary: nothing readable, Authentication failed."""
    headers = {"Content-Type": "multipart/form-data"}
    response = await api.post(PATH, data=b"--x\r\n\r\n", headers=headers)
    assert (response.status, await response.json()) == (200, AUTH_FAILED)


async def test_fields_in_any_order_and_unknown_parts(
    api: Client, acme: Account, tmp_path: Path
) -> None:
    """The file first, credentials last, an unknown part between: accepted."""
    data = aiohttp.FormData()
    data.add_field("file", write_csv(tmp_path / "a.csv", GOOD_ROWS), filename="a.csv")
    data.add_field("comment", "ignored")
    data.add_field("campaignName", "sales")
    data.add_field("apiKey", acme.key)
    data.add_field("username", acme.name)
    response = await api.post(PATH, data=data)
    assert (response.status, await response.json()) == (200, ACCEPTED)


async def test_a_file_name_that_is_not_utf8_plays_no_part(
    api: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A file name in bytes that are not UTF-8: accepted like any other, its job recorded with
    the name as far as it reads (the name plays no part in the checks)."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="username"\r\n\r\n{acme.name}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="apiKey"\r\n\r\n{acme.key}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="campaignName"\r\n\r\nsales\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'
    ).encode() + (b'\xff\xfe.csv"\r\n\r\nPhoneNumber\r\n9876543210\r\n--b0undary--\r\n')
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = await api.post(PATH, data=body, headers=headers)
    assert (response.status, await response.json()) == (200, ACCEPTED)
    upload_ref = await pool.fetchval("SELECT upload_ref FROM jobs")
    assert upload_ref.endswith(".csv")
    assert upload_ref.encode()  # UTF-8 throughout


async def test_body_over_the_size_limit(
    make_client: Callable[..., Awaitable[Client]], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """Past LEDGER_MAX_BODY_BYTES: 413 Data limit exceeded, nothing submitted."""
    api = await make_client(max_body_bytes=64 * 1024)
    acme = await make_account(api)
    rows = [["PhoneNumber", "Name"], *([f"98765{i:05d}", "x" * 50] for i in range(2000))]
    data = write_csv(tmp_path / "big.csv", rows)
    assert await upload(api, acme, data) == (413, error("Data limit exceeded"))
    assert await job_count(pool) == 0
