"""Ozonetel bulk JSON V4 through the real app: every refusal in its order, the job end to end
with a real callback receiver, the failed-rows csv, checkDuplicate and isDelete, action=start,
and finding the job by transactionId. Every test ends with `projections verify`."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import msgspec
import pytest

from lead_ledger.api import ozonetel_v4
from lead_ledger.api.callback_http import poster
from lead_ledger.ledger.envelope import ANY_VERSION, Actor
from lead_ledger.ledger.job_events import CallbackAttempted
from lead_ledger.ledger.locks import account_lock_key, campaign_lock_key
from lead_ledger.projections.rebuild import verify
from lead_ledger.service import callbacks, jobs
from lead_ledger.service.job_kinds import job_kinds
from lead_ledger.service.writer import Context, record, stream_append
from tests.api.test_ozonetel_bulk import (
    RATE_LIMITED,
    Account,
    admin,
    api,
    campaign_state,
    error,
    make_client,
)
from tests.api.test_ozonetel_bulk import make_account as make_bulk_account
from tests.api.test_ozonetel_bulk_jobs import Receiver, receiver
from tests.integration.test_jobs import until
from tests.support import Client, fresh_minute

__all__ = ["api", "make_client", "receiver"]  # fixtures, imported to be found here

PATH = ozonetel_v4.PATH
ROWS: list[list[Any]] = [["9876543210", "Asha"], ["9876543211", "Ravi"]]
MAP = ["PhoneNumber", "Name"]
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


async def make_account(api: Client, name: str = "acme", per_minute: int = 1000) -> Account:
    account = await make_bulk_account(api, name)
    limits = {"rate_limits": {"ozonetel_bulk_v4_per_minute": per_minute}}
    await admin(api, "PATCH", f"/accounts/{name}/settings", limits)
    return account


@pytest.fixture
async def acme(api: Client) -> Account:
    return await make_account(api)


def body(account: Account, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiKey": account.key,
        "userName": account.name,
        "campaignName": "sales",
        "bulkData": {"map": MAP, "data": ROWS},
    }
    return {k: v for k, v in (base | fields).items() if v is not ...}


async def post(api: Client, payload: object, **headers: str) -> tuple[int, Any]:
    if isinstance(payload, bytes):
        response = await api.post(PATH, data=payload, headers=headers)
    else:
        response = await api.post(PATH, json=payload, headers=headers)
    return response.status, await response.json()


def queued(answer: tuple[int, Any]) -> str:
    """The transactionId of an accepted request (asserting it was accepted)."""
    status, reply = answer
    assert status == 200, reply
    assert list(reply) == ["transactionId", "status", "message"]
    assert (reply["status"], reply["message"]) == ("success", "queued successfully")
    assert re.fullmatch(r"\d{24}", reply["transactionId"])
    transaction_id: str = reply["transactionId"]
    return transaction_id


async def job_count(pool: asyncpg.Pool) -> int:
    found: int = await pool.fetchval("SELECT count(*) FROM jobs")
    return found


async def numbers(pool: asyncpg.Pool, campaign: str = "sales") -> list[str]:
    rows = await pool.fetch(
        "SELECT l.phone_numbers[1] AS phone FROM leads l JOIN campaigns c USING (campaign_id)"
        " WHERE c.name = $1 ORDER BY l.lead_id",
        campaign,
    )
    return [row["phone"] for row in rows]


def native(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.native_key}"}


async def failed_rows(api: Client, account: Account, url: str) -> list[dict[str, str]]:
    """The failedFilePath's csv, fetched with the account's native key, as dicts."""
    path = url.split("://", 1)[1].split("/", 1)[1]
    response = await api.get(f"/{path}", headers=native(account))
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(await response.text())))


# --- the request's checks, in order -------------------------------------------------------------


@pytest.mark.parametrize("key", [..., "", "  ", None, {"key": 1}])
async def test_api_key_missing(api: Client, acme: Account, pool: asyncpg.Pool, key: object) -> None:
    """No apiKey in the body nor the header (or a blank or non-text one): its message."""
    answer = await post(api, body(acme, apiKey=key, userName=...))
    assert answer == (200, error("apiKey should not be empty"))
    assert await job_count(pool) == 0


async def test_api_key_from_the_header(api: Client, acme: Account) -> None:
    """The apiKey may come as a header instead."""
    queued(await post(api, body(acme, apiKey=...), apiKey=acme.key))


@pytest.mark.parametrize("username", [..., "", " ", None])
async def test_user_name_missing(api: Client, acme: Account, username: object) -> None:
    """userName missing or blank: userName should not be empty (before the key is looked up)."""
    answer = await post(api, body(acme, userName=username, apiKey="not-a-key"))
    assert answer == (200, error("userName should not be empty"))


async def test_invalid_user_or_key(api: Client, acme: Account, pool: asyncpg.Pool) -> None:
    """An unknown key, a native key, or another account's name: Invalid userName or apiKey."""
    other = await make_account(api, "other")
    invalid = (200, error("Invalid userName or apiKey"))
    assert await post(api, body(acme, apiKey="not-a-key")) == invalid
    assert await post(api, body(acme, apiKey=acme.native_key)) == invalid
    assert await post(api, body(acme, userName=other.name)) == invalid
    queued(await post(api, body(acme, userName="ACME")))  # the name in any case
    assert await job_count(pool) == 1


@pytest.mark.parametrize("campaign", [..., "", None])
async def test_campaign_name_missing(api: Client, acme: Account, campaign: object) -> None:
    """campaignName missing or blank: its message."""
    answer = await post(api, body(acme, campaignName=campaign))
    assert answer == (200, error("campaignName should not be empty"))


@pytest.mark.parametrize("campaign", ["nope", "support", "Sales"])
async def test_campaign_name_invalid(api: Client, acme: Account, campaign: str) -> None:
    """Unknown, inbound, or another case: Invalid campaignName."""
    assert await post(api, body(acme, campaignName=campaign)) == (
        200,
        error("Invalid campaignName"),
    )


@pytest.mark.parametrize(
    "bulk",
    [
        ...,
        None,
        {},
        [],
        "not json",
        {"map": [], "data": ROWS},
        {"map": MAP, "data": []},
        {"map": "PhoneNumber", "data": ROWS},
        {"map": MAP},
    ],
)
async def test_bulk_data_missing(api: Client, acme: Account, bulk: object) -> None:
    """bulkData missing, not {"map": [...], "data": [...]}, or either list empty."""
    answer = await post(api, body(acme, bulkData=bulk))
    assert answer == (200, error("bulkData should not be empty"))


async def test_bulk_data_as_json_text(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """bulkData sent as a JSON string (as PHP clients often do) reads like the object."""
    text = '{"map": ["PhoneNumber"], "data": [["9876543210"]]}'
    queued(await post(api, body(acme, bulkData=text, callBackUrl=receiver.url)))
    assert (await receiver.next())["data"]["numbersProcessed"] == "1"
    assert await numbers(pool) == ["9876543210"]


@pytest.mark.parametrize(
    ("campaign", "columns", "message"),
    [
        ("sales", ["Name", "Phone"], "Map file doesnt contain phoneNumber"),
        ("agents", ["PhoneNumber", "skill"], "Map file doesnt contain Agent Id"),
        ("skills", ["PhoneNumber", "AgentId"], "Skillwise campaign doesn't have skill as column"),
    ],
)
async def test_map_without_a_needed_column(
    api: Client, acme: Account, campaign: str, columns: list[str], message: str
) -> None:
    """The map lacks the phone column, or the agent (skill) column an agentwise (skillwise)
    campaign needs: the file upload's texts."""
    bulk = {"map": columns, "data": [["9876543210", "x"]]}
    answer = await post(api, body(acme, campaignName=campaign, bulkData=bulk))
    assert answer == (200, error(message))


async def test_data_limits(api: Client, acme: Account, pool: asyncpg.Pool) -> None:
    """501 rows, or one row over 2,000 characters: Data limit exceeded; 500 rows and a row of
    exactly 2,000 characters are taken."""
    limit = (200, error("Data limit exceeded"))
    many = [[f"98765{n:05d}"] for n in range(501)]
    bulk = {"map": ["PhoneNumber"], "data": many}
    assert await post(api, body(acme, bulkData=bulk)) == limit
    wide = {"map": MAP, "data": [["9876543210", "x" * 1991]]}
    assert await post(api, body(acme, bulkData=wide)) == limit
    assert await job_count(pool) == 0
    queued(await post(api, body(acme, bulkData=bulk | {"data": many[:500]})))
    queued(await post(api, body(acme, bulkData={"map": MAP, "data": [["9876543210", "x" * 1990]]})))


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1, 2]", b'"text"', b"", b'{"apiKey": {"nested": 1}}']
)
async def test_a_body_without_fields(api: Client, acme: Account, raw: bytes) -> None:
    """A body that is not a JSON object has no fields: apiKey should not be empty."""
    answer = await post(api, raw, **{"Content-Type": "application/json"})
    assert answer == (200, error("apiKey should not be empty"))


async def test_form_encoded_body(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """A form with bulkData as JSON text is read like the JSON body."""
    form = {
        "apiKey": acme.key,
        "userName": acme.name,
        "campaignName": "sales",
        "bulkData": '{"map": ["PhoneNumber"], "data": [["9876543210"]]}',
        "callBackUrl": receiver.url,
    }
    response = await api.post(PATH, data=form)
    queued((response.status, await response.json()))
    assert (await receiver.next())["data"]["numbersProcessed"] == "1"


async def test_rate_limit(api: Client, pool: asyncpg.Pool) -> None:
    """The sixth accepted request of a minute (default 5): 429 with Retry-After; refused
    requests do not count, and the limit is the account's own."""
    await fresh_minute()
    acme = await make_bulk_account(api)
    other = await make_bulk_account(api, "other")
    for _ in range(3):
        await post(api, body(acme, campaignName="nope"))
    for _ in range(5):
        queued(await post(api, body(acme)))
    response = await api.post(PATH, json=body(acme))
    assert (response.status, await response.json()) == (429, RATE_LIMITED)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    queued(await post(api, body(other)))
    assert await job_count(pool) == 6


# --- the job ------------------------------------------------------------------------------------


async def test_rows_added_and_the_callback(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """Every column lands where it belongs (any case, `_` and spaces ignored; others as lead
    fields); the callback is the vendor's body with counts as strings."""
    bulk = {
        "map": ["phone_number", "NAME", "Priority", "expiry date", "AgentId", "Skill", "City"],
        "data": [
            ["9876543210", "Asha", 7, "2099-01-31", "agent-1", "billing", "Pune"],
            [9876543211, "Ravi", "", "", "", "", ""],
        ],
    }
    transaction_id = queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    callback = await receiver.next()
    assert list(callback) == ["data"]
    data = callback["data"]
    assert TIME.fullmatch(data.pop("startDateTime"))
    assert TIME.fullmatch(data.pop("endDateTime"))
    assert data == {
        "totalNoUploaded": "2",
        "numbersProcessed": "2",
        "numbersNotProcessed": "0",
        "failedFilePath": "",
        "transactionId": transaction_id,
        "status": "Success",
        "message": "File Successfully uploaded.",
    }
    rows = await pool.fetch(
        "SELECT phone_numbers, name, priority, expires_at, agent, skill, extra FROM leads"
        " ORDER BY lead_id"
    )
    first, second = (dict(row) for row in rows)
    assert (first["phone_numbers"], first["name"], first["priority"]) == (["9876543210"], "Asha", 7)
    assert first["expires_at"].isoformat() == "2099-01-31T00:00:00+00:00"
    assert (first["agent"], first["skill"]) == ("agent-1", "billing")
    assert msgspec.json.decode(first["extra"]) == {"City": "Pune"}
    assert (second["phone_numbers"], second["priority"], second["extra"]) == (
        ["9876543211"],
        1,
        b"{}",
    )


async def test_refused_rows_and_the_failed_file(
    api: Client, acme: Account, receiver: Receiver
) -> None:
    """Each row is checked as AddCampaignData checks a number; the refused ones are counted
    and listed, with their reasons, in the failedFilePath csv (native key)."""
    response = await api.post("/v1/dnc", json=[{"phone": "9876500009"}], headers=native(acme))
    assert response.status == 201
    bulk = {
        "map": ["PhoneNumber", "Name", "Priority", "ExpiryDate"],
        "data": [
            ["9876500001", "Good", "", ""],
            ["12", "Short", "", ""],
            ["9876500003", "Bad priority", "100", ""],
            ["9876500004", "Bad date", "", "31-01-2099"],
            ["9876500005", "Past", "", "2020-01-01"],
            ["9876500006", "x" * 101, "", ""],
            "not an array",
            ["9876500008", '=HYPERLINK("http://evil")', "", ""],
            ["+919876500009", "Blocked", "", ""],
        ],
    }
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    data = (await receiver.next())["data"]
    assert (data["totalNoUploaded"], data["numbersProcessed"], data["numbersNotProcessed"]) == (
        "9",
        "2",
        "7",
    )
    assert data["failedFilePath"].startswith("http://127.0.0.1:")
    rows = await failed_rows(api, acme, data["failedFilePath"])
    reasons = {row["row_number"]: row["reason"] for row in rows}
    assert reasons == {
        "2": "phone number should be numeric and must be between 3 to 16 digits and allows"
        " prefix +",
        "3": "The priority value must be numeric and range from 0 to 99.",
        "4": "Invalid date format. Please pass date in format yyyy-MM-dd HH:mm:ss or yyyy-MM-dd",
        "5": "The expiry date and time must be in the future",
        "6": "Name should not exceed 100 characters",
        "7": "Row should be an array of values",
        "9": "PhoneNumber Added is a DND Number",
    }
    by_number = {row["row_number"]: row for row in rows}
    assert by_number["2"]["PhoneNumber"] == "12"
    assert by_number["3"]["Priority"] == "100"
    assert by_number["7"]["row"] == "not an array"
    assert by_number["9"]["PhoneNumber"] == "+919876500009"


async def test_failed_file_columns_are_in_the_uploads_order(
    api: Client, acme: Account, receiver: Receiver, owner_pool: asyncpg.Pool
) -> None:
    """The failed file's columns are the upload's, in the order it gave them (its map), not
    the order the database keeps an object's keys in; a column only a later row has comes
    after them. Rebuilt, the job reads the same."""
    bulk = {
        "map": ["PhoneNumber", "Name", "Priority", "AgentId"],
        "data": [["12", "Short", "", ""], ["9876500002", "Bad", "100", ""], "not an array"],
    }
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    url = (await receiver.next())["data"]["failedFilePath"]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    response = await api.get(path, headers=native(acme))
    header = (await response.text()).split("\r\n", 1)[0]
    assert header == "row_number,PhoneNumber,Name,Priority,AgentId,row,reason"
    report = await verify(owner_pool, ["jobs"])  # shadow tables are the owner's
    assert [t.name for t in report.tables if not t.ok] == []


async def test_the_callbacks_keys_come_in_the_vendors_order(
    api: Client, acme: Account, receiver: Receiver
) -> None:
    """The callback's `data` keys in VENDOR-APIS G's order, as the body was built, not the
    order the database keeps an object's keys in while the callback waits in the outbox."""
    queued(await post(api, body(acme, callBackUrl=receiver.url)))
    data = (await receiver.next())["data"]
    assert list(data) == [
        "totalNoUploaded",
        "numbersProcessed",
        "numbersNotProcessed",
        "failedFilePath",
        "transactionId",
        "status",
        "message",
        "startDateTime",
        "endDateTime",
    ]


async def test_failed_file_escapes_formulas(api: Client, acme: Account, receiver: Receiver) -> None:
    """A refused row's cell that a spreadsheet would run is written as text (a leading ')."""
    data_rows = [
        ["bad", "=1+2"],
        ["x", "@SUM(A1)"],
        ["+91 98765-43210x", "-2+3"],
        ["+91 (98765) 43210.", "\tTab"],
    ]
    bulk = {"map": ["PhoneNumber", "Name"], "data": data_rows}
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    data = (await receiver.next())["data"]
    rows = await failed_rows(api, acme, data["failedFilePath"])
    assert [(row["PhoneNumber"], row["Name"]) for row in rows] == [
        ("bad", "'=1+2"),
        ("x", "'@SUM(A1)"),
        ("'+91 98765-43210x", "'-2+3"),
        ("+91 (98765) 43210.", "'\tTab"),  # a signed number is no formula: kept as sent
    ]


async def test_agentwise_and_skillwise_rows(api: Client, acme: Account, receiver: Receiver) -> None:
    """An agentwise campaign refuses a row without a known agent, a skillwise one a row
    without a known skill, with AddCampaignData's texts."""
    agents = {
        "map": ["PhoneNumber", "AgentId"],
        "data": [["9876500001", "agent-1"], ["9876500002", ""], ["9876500003", "ghost"]],
    }
    queued(
        await post(
            api, body(acme, campaignName="agents", bulkData=agents, callBackUrl=receiver.url)
        )
    )
    data = (await receiver.next())["data"]
    assert data["numbersProcessed"] == "1"
    rows = await failed_rows(api, acme, data["failedFilePath"])
    assert [(r["row_number"], r["reason"]) for r in rows] == [
        ("2", "Agent Is Empty!"),
        ("3", "Agent is not correctly mapped!"),
    ]
    skills = {
        "map": ["PhoneNumber", "skill"],
        "data": [["9876500004", "billing"], ["9876500005", "x"]],
    }
    queued(
        await post(
            api, body(acme, campaignName="skills", bulkData=skills, callBackUrl=receiver.url)
        )
    )
    data = (await receiver.next())["data"]
    rows = await failed_rows(api, acme, data["failedFilePath"])
    assert [(r["row_number"], r["reason"]) for r in rows] == [("2", "Please provide valid skill")]


async def test_no_duplicate_check_by_default(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """Without checkDuplicate or isDelete, a repeated number is added again."""
    bulk = {"map": ["PhoneNumber"], "data": [["9876543210"], ["9876543210"]]}
    queued(
        await post(api, body(acme, bulkData=bulk, checkDuplicate="false", callBackUrl=receiver.url))
    )
    assert (await receiver.next())["data"]["numbersProcessed"] == "2"
    assert await numbers(pool) == ["9876543210", "9876543210"]


@pytest.mark.parametrize("flag", ["true", True, "TRUE"])
async def test_check_duplicate(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool, flag: object
) -> None:
    """checkDuplicate: a number live in the campaign (any spelling) is refused, and of
    repeats in the payload only the first is added; another campaign's leads do not count."""
    first = {"map": ["PhoneNumber"], "data": [["9876543210"]]}
    queued(await post(api, body(acme, bulkData=first, callBackUrl=receiver.url)))
    await receiver.next()
    queued(
        await post(api, body(acme, campaignName="second", bulkData=first, callBackUrl=receiver.url))
    )
    await receiver.next()
    bulk = {"map": ["PhoneNumber"], "data": [["+919876543210"], ["9876500001"], ["9876500001"]]}
    queued(
        await post(api, body(acme, bulkData=bulk, checkDuplicate=flag, callBackUrl=receiver.url))
    )
    data = (await receiver.next())["data"]
    assert (data["numbersProcessed"], data["numbersNotProcessed"]) == ("1", "2")
    rows = await failed_rows(api, acme, data["failedFilePath"])
    assert [(r["row_number"], r["reason"]) for r in rows] == [
        ("1", "Number already exists in campaign"),
        ("3", "Duplicate number in payload"),
    ]
    assert await numbers(pool) == ["9876543210", "9876500001"]
    # Each names the lead it duplicates: the campaign's, and the payload's first row's.
    job_id = await pool.fetchval("SELECT max(job_id) FROM jobs")
    owners = await pool.fetchval(
        "SELECT array_agg((r->'existing_lead_ids'->>0)::bigint ORDER BY r->>'row_number')"
        " FROM jobs, jsonb_array_elements(rejected_rows) r WHERE job_id = $1",
        job_id,
    )
    live = "SELECT lead_id FROM leads l JOIN campaigns c USING (campaign_id)"
    assert owners == [
        await pool.fetchval(
            f"{live} WHERE c.name = 'sales' AND phone_numbers = $1", ["9876543210"]
        ),
        await pool.fetchval(f"{live} WHERE phone_numbers = $1", ["9876500001"]),
    ]


async def archive_all(api: Client, acme: Account, pool: asyncpg.Pool) -> None:
    """Archive every live lead through TForge's archive API (a vicidial key of the account)."""
    key = (await admin(api, "POST", f"/accounts/{acme.name}/credentials", {"api": "vicidial"}))[
        "key"
    ]
    ids = [row["lead_id"] for row in await pool.fetch("SELECT lead_id FROM leads")]
    rights = {"insert_leads": True, "update_leads": True, "delete_leads": True}
    response = await api.post(
        "/vicidial/leads/archive",
        json={**rights, "lead_ids": ids},
        headers={"Authorization": f"Key={key}"},
    )
    assert response.status == 200, await response.text()
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_is_delete_refuses_archived_numbers_and_wins(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """isDelete refuses a number any lead of the campaign holds, archived included, and wins
    over checkDuplicate=false; checkDuplicate alone lets an archived number in."""
    first = {"map": ["PhoneNumber"], "data": [["9876543210"]]}
    queued(await post(api, body(acme, bulkData=first, callBackUrl=receiver.url)))
    await receiver.next()
    await archive_all(api, acme, pool)
    bulk = {"map": ["PhoneNumber"], "data": [["09876543210"], ["9876500001"], ["9876500001"]]}
    sent = body(
        acme, bulkData=bulk, isDelete="true", checkDuplicate="false", callBackUrl=receiver.url
    )
    queued(await post(api, sent))
    data = (await receiver.next())["data"]
    assert (data["numbersProcessed"], data["numbersNotProcessed"]) == ("1", "2")
    rows = await failed_rows(api, acme, data["failedFilePath"])
    assert [(r["row_number"], r["reason"]) for r in rows] == [
        ("1", "Number already exists in campaign"),
        ("3", "Duplicate number in payload"),
    ]
    queued(
        await post(api, body(acme, bulkData=first, checkDuplicate="true", callBackUrl=receiver.url))
    )
    assert (await receiver.next())["data"]["numbersProcessed"] == "1"
    assert await numbers(pool) == ["9876500001", "9876543210"]


async def test_action_start_starts_the_campaign(
    api: Client, acme: Account, receiver: Receiver
) -> None:
    """action=start: the campaign runs once the rows are added; without it, it stays stopped."""
    queued(await post(api, body(acme, callBackUrl=receiver.url)))
    await receiver.next()
    assert await campaign_state(api, acme) == "stopped"
    queued(await post(api, body(acme, action="Start", callBackUrl=receiver.url)))
    await receiver.next()
    assert await campaign_state(api, acme) == "running"


async def test_find_the_job_by_transaction_id(
    api: Client, acme: Account, receiver: Receiver
) -> None:
    """GET /v1/jobs?transaction_id= finds the job (and only the account's own)."""
    transaction_id = queued(await post(api, body(acme, callBackUrl=receiver.url)))
    queued(await post(api, body(acme, callBackUrl=receiver.url)))
    await receiver.next()
    await receiver.next()
    response = await api.get(f"/v1/jobs?transaction_id={transaction_id}", headers=native(acme))
    [job] = (await response.json())["jobs"]
    assert (job["kind"], job["upload_ref"], job["state"]) == (
        "ozonetel_bulk_v4",
        transaction_id,
        "done",
    )
    assert job["counts"]["inserted"] == 2
    same = await api.get(f"/v1/jobs?upload_ref={transaction_id}", headers=native(acme))
    assert (await same.json())["jobs"] == [job]
    other = await make_account(api, "other")
    response = await api.get(f"/v1/jobs?transaction_id={transaction_id}", headers=native(other))
    assert (await response.json())["jobs"] == []
    both = await api.get(
        f"/v1/jobs?transaction_id={transaction_id}&upload_ref=x", headers=native(acme)
    )
    assert both.status == 400
    assert both.content_type == "application/problem+json"


async def test_failed_file_is_the_accounts_own(
    api: Client, acme: Account, receiver: Receiver
) -> None:
    """The failed-rows csv needs the account's native key: 401 without, 404 for another
    account, and a job without refusals has the header only."""
    bulk = {"map": ["PhoneNumber"], "data": [["bad"]]}
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    url = (await receiver.next())["data"]["failedFilePath"]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    assert (await api.get(path)).status == 401
    other = await make_account(api, "other")
    response = await api.get(path, headers=native(other))
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert (await api.get("/v1/jobs/abc/rejected.csv", headers=native(acme))).status == 404
    queued(await post(api, body(acme, callBackUrl=receiver.url)))
    await receiver.next()
    job_id = int(path.split("/")[3]) + 1
    response = await api.get(f"/v1/jobs/{job_id}/rejected.csv", headers=native(acme))
    assert await response.text() == "row_number,reason\r\n"


async def test_public_url_names_the_failed_file(
    make_client: Callable[..., Awaitable[Client]], receiver: Receiver
) -> None:
    """With LEDGER_PUBLIC_URL, failedFilePath starts with it."""
    api = await make_client(public_url="https://ledger.example.com/")
    acme = await make_account(api)
    bulk = {"map": ["PhoneNumber"], "data": [["bad"]]}
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    url = (await receiver.next())["data"]["failedFilePath"]
    assert re.fullmatch(r"https://ledger\.example\.com/v1/jobs/\d+/rejected\.csv", url)


async def test_failed_job_calls_back_failure(
    make_client: Callable[..., Awaitable[Client]], receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """A job that cannot complete ends failed and POSTs the failure body: nothing added,
    every row counted as not processed, the campaign not started."""
    api = await make_client(worker=False)
    acme = await make_account(api)
    transaction_id = queued(await post(api, body(acme, action="start", callBackUrl=receiver.url)))
    job_id = await pool.fetchval("SELECT max(job_id) FROM jobs")
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
    data = (await receiver.next())["data"]
    assert TIME.fullmatch(data.pop("startDateTime"))
    assert TIME.fullmatch(data.pop("endDateTime"))
    assert data == {
        "totalNoUploaded": "2",
        "numbersProcessed": "0",
        "numbersNotProcessed": "2",
        "failedFilePath": "",
        "transactionId": transaction_id,
        "status": "Failure",
        "message": "File upload failed",
    }
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
    assert await campaign_state(api, acme) == "stopped"


async def test_times_in_the_office_hours_zone(
    api: Client, acme: Account, receiver: Receiver
) -> None:
    """startDateTime and endDateTime are the account's wall clock (its office hours' zone)."""
    hours = {
        "timezone": "Pacific/Kiritimati",
        "days": [1, 2, 3, 4, 5, 6, 7],
        "start": "00:00",
        "end": "23:59",
    }
    await admin(api, "PATCH", f"/accounts/{acme.name}/settings", {"office_hours": hours})
    queued(await post(api, body(acme, callBackUrl=receiver.url)))
    data = (await receiver.next())["data"]
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: no test machine's own zone
    end = datetime.strptime(data["endDateTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    assert abs((datetime.now(UTC) - end).total_seconds()) < 120


async def test_other_campaigns_jobs_run_while_one_waits(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """A process runs LEDGER_JOB_WORKERS jobs at once (2 by default): while one campaign's job
    waits on the campaign's lock, another campaign's job runs to its callback."""
    sales = await pool.fetchval("SELECT campaign_id FROM campaigns WHERE name = 'sales'")
    async with pool.acquire() as holder:
        await holder.execute("SELECT pg_advisory_lock($1)", campaign_lock_key(sales))
        try:
            first = queued(await post(api, body(acme, callBackUrl=receiver.url)))
            await until(pool, "SELECT EXISTS (SELECT FROM job_queue WHERE state = 'running')")
            sent = body(acme, campaignName="second", callBackUrl=receiver.url)
            second = queued(await post(api, sent))
            callback = await asyncio.wait_for(receiver.bodies.get(), timeout=15)
            assert callback["data"]["transactionId"] == second
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", campaign_lock_key(sales))
    assert (await receiver.next())["data"]["transactionId"] == first


async def test_erasure_blanks_a_refused_row(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """A refused row is a subject of its own: erasing its number blanks its cells in the
    failed-rows file, keeps its number and reason, and leaves the other rows readable."""
    response = await api.post("/v1/dnc", json=[{"phone": "9876500001"}], headers=native(acme))
    assert response.status == 201
    bulk = {"map": ["PhoneNumber", "Name"], "data": [["9876500001", "Asha"], ["12", "Ravi"]]}
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    url = (await receiver.next())["data"]["failedFilePath"]
    assert len(await failed_rows(api, acme, url)) == 2
    response = await api.post(
        "/v1/erasures", json={"phone": "+91 98765 00001"}, headers=native(acme)
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["subjects"] == 1
    rows = await failed_rows(api, acme, url)
    assert [(r["row_number"], r["PhoneNumber"], r["Name"]) for r in rows] == [
        ("1", "", ""),
        ("2", "12", "Ravi"),
    ]
    assert rows[0]["reason"] == "PhoneNumber Added is a DND Number"
    stored = await pool.fetch("SELECT data FROM events WHERE type = 'JobCompleted'")
    assert all(b"9876500001" not in row["data"] and b"Asha" not in row["data"] for row in stored)


async def test_an_erasure_waits_for_a_callback_being_recorded(
    make_client: Callable[..., Awaitable[Client]], receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """An erasure of a job's refused row while the dispatcher is recording that job's callback
    attempt (same job stream) waits for it, then appends after it: 200, not a version clash."""
    api = await make_client(worker=False)
    acme = await make_account(api)
    bulk = {"map": ["PhoneNumber"], "data": [["12"]]}
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    async with pool.acquire() as conn:
        claim = await jobs.claim_next(conn, "test-worker", 60)
        assert claim is not None
        assert await jobs.run_job(conn, "test-worker", claim, job_kinds()) == "done"
    job_id = claim.job_id
    async with pool.acquire() as dispatcher, dispatcher.transaction():
        # What the dispatcher does for an attempt: its outbox row first, then the event.
        await dispatcher.execute(
            "UPDATE callback_outbox SET attempts = attempts WHERE job_id = $1", job_id
        )
        account_id = await dispatcher.fetchval(
            "SELECT account_id FROM jobs WHERE job_id = $1", job_id
        )
        ctx = Context(actor=Actor(dialect="system", account_id=account_id), job_id=str(job_id))
        attempt = CallbackAttempted(job_id=job_id, attempt=1, url=receiver.url, status_code=200)
        append = stream_append(ctx, f"job-{job_id}", ANY_VERSION, [attempt], account_id=account_id)
        await record(dispatcher, [append])
        erasing = asyncio.create_task(
            api.post("/v1/erasures", json={"user_data": "12"}, headers=native(acme))
        )
        await until(
            pool,
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database())",
        )
    response = await erasing
    assert response.status == 200, await response.text()
    types = await pool.fetch(
        "SELECT type FROM events WHERE stream_id = $1 ORDER BY stream_version", f"job-{job_id}"
    )
    assert [t["type"] for t in types] == [
        "JobSubmitted",
        "JobCompleted",
        "CallbackAttempted",
        "JobRowsErased",
    ]


async def test_nul_characters_lose_nothing(
    api: Client, acme: Account, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """NUL in a column name, a lead field, an agent or a skill: the rows are checked like any
    other (the NUL dropped from what is stored, an agent holding it is unknown), never a failed
    job."""
    bulk = {
        "map": ["PhoneNumber", "Ci\u0000ty", "Name"],
        "data": [["9876500001", "Pu\u0000ne", "As\u0000ha"]],
    }
    queued(await post(api, body(acme, bulkData=bulk, callBackUrl=receiver.url)))
    data = (await receiver.next())["data"]
    assert (data["status"], data["numbersProcessed"]) == ("Success", "1")
    row = await pool.fetchrow("SELECT name, extra FROM leads")
    assert row is not None
    assert (row["name"], msgspec.json.decode(row["extra"])) == ("Asha", {"City": "Pune"})
    agents = {
        "map": ["PhoneNumber", "AgentId", "skill"],
        "data": [["9876500002", "agent\u0000-1", "bil\u0000ling"]],
    }
    sent = body(acme, campaignName="agents", bulkData=agents, callBackUrl=receiver.url)
    queued(await post(api, sent))
    data = (await receiver.next())["data"]
    assert (data["status"], data["numbersNotProcessed"]) == ("Success", "1")
    rows = await failed_rows(api, acme, data["failedFilePath"])
    assert rows[0]["reason"] == "Agent is not correctly mapped!"
    assert rows[0]["AgentId"] == "agent-1"


async def test_a_start_job_takes_the_account_lock_before_its_transaction_id(
    make_client: Callable[..., Awaitable[Client]], receiver: Receiver, pool: asyncpg.Pool
) -> None:
    """action=start writes under the account's lock: the run waits for it holding no
    transaction id yet (the feed orders by transaction id), then starts the campaign."""
    api = await make_client(worker=False)
    acme = await make_account(api)
    queued(await post(api, body(acme, action="start", callBackUrl=receiver.url)))
    account_id = await pool.fetchval("SELECT account_id FROM accounts WHERE name = 'acme'")
    waiting = (
        "SELECT backend_xid IS NULL FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    async with pool.acquire() as holder, pool.acquire() as conn:
        await holder.execute("SELECT pg_advisory_lock($1)", account_lock_key(account_id))
        try:
            claim = await jobs.claim_next(conn, "test-worker", 60)
            assert claim is not None
            running = asyncio.create_task(jobs.run_job(conn, "test-worker", claim, job_kinds()))
            await until(pool, f"SELECT EXISTS ({waiting})")
            assert await pool.fetchval(waiting) is True
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", account_lock_key(account_id))
        assert await running == "done"
    assert await campaign_state(api, acme) == "running"
