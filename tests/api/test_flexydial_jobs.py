"""Flexydial uploads run by the app's job worker: inserts, updates, reassignments, row problems.

Each test uploads through the HTTP API, lets the app's background worker run the job, reads
the outcome from the status route, and checks the leads through the native API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from lead_ledger.api import ozonetel_add
from lead_ledger.api.app import create_app
from lead_ledger.api.keys import POOL
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.locks import campaign_lock_key
from lead_ledger.service import flexydial, jobs
from lead_ledger.service.job_kinds import job_kinds
from lead_ledger.service.leads import delete_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings
from tests.api.test_flexydial import (
    AGENT,
    CAMPAIGN,
    CITY,
    CUSTOMER_ID,
    F1,
    F2,
    PENDING,
    Tenant,
    admin_post,
    leads,
    settled,
    status,
    tenant,
    update,
    upload,
)
from tests.factories import make_account, make_campaign
from tests.support import Client

COMPLETED = {"status": "Completed"}


@pytest.fixture
async def api(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """The real app, with its background job worker, on a fresh database."""
    return await aiohttp_client(create_app(settings, database_url))


IN_FILE = "This row is duplicated in file"  # the one description Flexydial writes as text
UNKNOWN_USER = "This user is not present in our database"


def said(**problems: str) -> str:
    """A row's description as Flexydial's code writes it: its failed checks, each by its key,
    as Python's json.dumps writes the object."""
    return "{" + ", ".join(f'"{key}": "{text}"' for key, text in problems.items()) + "}"


def exists(campaign: str = "sales") -> str:
    return said(
        duplicate_check=f"contact with this numeric value is already exist in {campaign} campaign"
    )


async def run(api: Client, who: Tenant, body: dict[str, Any], method: str = "GET") -> Any:
    """Upload and wait for the worker; the final status."""
    return await settled(api, who, await upload(api, who, body), method)


async def insert(api: Client, who: Tenant, *rows: dict[str, Any], campaign: str = "sales") -> Any:
    return await run(api, who, {"campaign": campaign, "bulk_data": list(rows)})


async def history(api: Client, who: Tenant, lead_id: int) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/leads/{lead_id}/history", headers=who.native)
    assert response.status == 200
    events: list[dict[str, Any]] = (await response.json())["events"]
    return events


def by_number(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {lead["phone_numbers"][0]: lead for lead in found}


# --- inserts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_insert_completes_and_maps_every_column(api: Client, method: str) -> None:
    """VENDOR-APIS A's insert: every row becomes a lead; status Completed (GET and POST)."""
    acme = await tenant(api)
    row = {
        "numeric": "9876500001",
        "alt_numeric": "9876500002,9876500003",
        "first_name": "Asha",
        "last_name": "Rao",
        "email": "asha@example.com",
        "priority": "7",
        "user": "a1",
        CUSTOMER_ID: "C-1",
        CITY: "Pune",
    }
    body = {"campaign": "sales", "bulk_data": [row, {"numeric": 9876500009, "user": "a2"}]}
    assert await run(api, acme, body, method) == COMPLETED
    first, second = await leads(api, acme)
    assert {k: first[k] for k in ("phone_numbers", "first_name", "last_name", "email")} == {
        "phone_numbers": ["9876500001", "9876500002", "9876500003"],
        "first_name": "Asha",
        "last_name": "Rao",
        "email": "asha@example.com",
    }
    assert (first["priority"], first["agent"], first["crm"]) == (
        7,
        "a1",
        {CUSTOMER_ID: "C-1", CITY: "Pune"},
    )
    assert (second["phone_numbers"], second["agent"], second["priority"]) == (
        ["9876500009"],
        "a2",
        1,
    )
    assert first["dedupe_keys"] == ["+919876500001", "+919876500002", "+919876500003"]


async def test_insert_row_problems_are_invalid_data(api: Client) -> None:
    """Refused rows come back as improper_data (row as sent + description); the rest go in."""
    acme = await tenant(api)
    assert await insert(api, acme, {"numeric": "+919876500001"}) == COMPLETED
    rows = [
        {"numeric": "9876500010", "user": "a1"},
        {"numeric": "", "user": "a1"},
        {"numeric": "98765-00011", "user": "a1"},
        {"numeric": "9876500012", "alt_numeric": "1111,2222,3333,4444,5555,6666"},
        {"numeric": "9876500013", "alt_numeric": "1111,abc"},
        {"numeric": "9876500014", "priority": "high"},
        {"numeric": "9876500015", "priority": "100"},
        {"numeric": "9876500016", "email": "asha@"},
        {"numeric": "9876500017", "user": "nobody"},
        {"numeric": "09876500001"},
        {"numeric": "9876500010"},
        {"numeric": "9876500018", "alt_numeric": "9876500001"},
        {"numeric": "9876500019", "alt_numeric": "+919876500010"},
        {"numeric": "9876500020", "user": "a2", "first_name": "Ravi"},
    ]
    result = await insert(api, acme, *rows)
    assert result == {
        "status": "Invalid Data",
        "improper_data": [
            {"numeric": "", "user": "a1", "description": said(number="Enter Number")},
            {
                "numeric": "98765-00011",
                "user": "a1",
                "description": said(number="Enter Valid Number"),
            },
            {
                "numeric": "9876500012",
                "alt_numeric": "1111,2222,3333,4444,5555,6666",
                "description": said(alt_numeric="More than 5 alternate numbers are not allowed"),
            },
            {
                "numeric": "9876500013",
                "alt_numeric": "1111,abc",
                "description": said(alt_numeric="Enter Valid Number"),
            },
            {
                "numeric": "9876500014",
                "priority": "high",
                "description": said(priority="Enter Valid priority"),
            },
            {
                "numeric": "9876500015",
                "priority": "100",
                "description": said(priority="Enter Valid priority"),
            },
            {
                "numeric": "9876500016",
                "email": "asha@",
                "description": said(email="Enter Valid Email Address"),
            },
            {"numeric": "9876500017", "user": "nobody", "description": said(user=UNKNOWN_USER)},
            {"numeric": "09876500001", "description": exists()},
            {"numeric": "9876500010", "description": IN_FILE},
            {"numeric": "9876500018", "alt_numeric": "9876500001", "description": exists()},
            {"numeric": "9876500019", "alt_numeric": "+919876500010", "description": IN_FILE},
        ],
    }
    numbers = [lead["phone_numbers"][0] for lead in await leads(api, acme)]
    assert numbers == ["+919876500001", "9876500010", "9876500020"]


async def test_a_rows_every_failed_check_is_in_its_description(api: Client) -> None:
    """Flexydial runs every check on a row and reports them together, each by its key, the
    user's last; an update row's blank reference comes first."""
    acme = await tenant(api)
    row = {"numeric": "98x", "priority": "high", "email": "x", "user": "nobody"}
    result = await insert(api, acme, row)
    assert result["improper_data"] == [
        {
            **row,
            "description": '{"number": "Enter Valid Number", "priority": "Enter Valid priority",'
            ' "email": "Enter Valid Email Address", "user": "This user is not present in our'
            ' database"}',
        }
    ]
    blank = {"numeric": "", "email": "x", "user": "a1"}
    updated = await run(api, acme, update("numeric", blank))
    assert updated["improper_data"] == [
        {
            **blank,
            "description": '{"duplicate_check": "the numeric should not be blank",'
            ' "email": "Enter Valid Email Address"}',
        }
    ]


async def test_improper_data_keeps_the_rows_columns_in_their_order(api: Client) -> None:
    """An improper row's keys come back in the order the upload gave them, then its
    description, not in the order the database keeps an object's keys."""
    acme = await tenant(api)
    row = {"numeric": "98x", "first_name": "Asha", "user": "a1", CITY: "Pune"}
    result = await insert(api, acme, row)
    (improper,) = result["improper_data"]
    assert list(improper) == ["numeric", "first_name", "user", CITY, "description"]


async def test_duplicates_are_per_campaign(api: Client) -> None:
    """A number live in another campaign is no duplicate; a deleted lead's number is free."""
    acme = await tenant(api)
    assert await insert(api, acme, {"numeric": "9876500001"}, campaign="open") == COMPLETED
    assert await insert(api, acme, {"numeric": "9876500001"}) == COMPLETED
    (lead,) = await leads(api, acme)
    assert api.app is not None
    ctx = Context(actor=Actor(dialect="native", account_id=acme.account_id), request_id="t")
    async with api.app[POOL].acquire() as conn, write_transaction(conn):
        deleted = await delete_leads(
            conn, ctx, account_id=acme.account_id, lead_ids=[lead["lead_id"]]
        )
    assert deleted == [lead["lead_id"]]
    assert await insert(api, acme, {"numeric": "9876500001"}) == COMPLETED
    again = await insert(api, acme, {"numeric": "9876500001"})
    assert again["improper_data"] == [{"numeric": "9876500001", "description": exists()}]


async def test_seed_placeholder_campaign_and_agent(api: Client) -> None:
    """The seed's insert with its placeholder names: the rows' numbers are not numbers."""
    acme = await tenant(api)
    rows = [
        {"numeric": "<1st_customer_mobile_number(string)>", "user": AGENT, F1: "value"},
        {"numeric": "9876500001", "user": AGENT, F1: "value"},
    ]
    result = await insert(api, acme, *rows, campaign=CAMPAIGN)
    assert result["improper_data"] == [
        {**rows[0], "description": said(number="Enter Valid Number")}
    ]
    (lead,) = await leads(api, acme, CAMPAIGN)
    assert (lead["agent"], lead["crm"]) == (AGENT, {F1: "value"})


async def test_pending_while_the_job_waits(api: Client) -> None:
    """While the job cannot run (its campaign is locked by a writer), the status is Pending."""
    acme = await tenant(api)
    assert api.app is not None
    pool: asyncpg.Pool = api.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1)", campaign_lock_key(acme.campaigns["sales"])
        )
        job_id = await upload(
            api, acme, {"campaign": "sales", "bulk_data": [{"numeric": "9876500001"}]}
        )
        assert await status(api, acme, job_id) == {"status": PENDING}
        assert await status(api, acme, job_id, "POST") == {"status": PENDING}
    assert await settled(api, acme, job_id) == COMPLETED


async def test_failed_job_reads_as_pending(pool: asyncpg.Pool) -> None:
    """A job that failed (here: a payload no handler can read) answers the Pending text."""
    account_id = await make_account(pool)
    campaign_id = await make_campaign(pool, account_id)
    ctx = Context(actor=Actor(dialect="flexydial", account_id=account_id), request_id="t")
    async with pool.acquire() as conn:
        async with write_transaction(conn):
            job_id = await jobs.submit_job(
                conn,
                ctx,
                account_id=account_id,
                dialect="flexydial",
                kind="flexydial_insert",
                campaign_id=campaign_id,
                payload=b"not a bulk request",
                received=1,
            )
        claim = await jobs.claim_next(conn, "w1", 30.0)
        assert claim is not None
        assert await jobs.run_job(conn, "w1", claim, job_kinds(), max_attempts=1) == "failed"
        view = await jobs.get_job(conn, account_id, job_id)
        assert view is not None
        assert view.state == "failed"
        answer = await flexydial.job_status(conn, account_id, str(job_id))
    assert answer == flexydial.Status(status=PENDING)


# --- updates ------------------------------------------------------------------------------------


async def test_type1_update_by_numeric(api: Client) -> None:
    """Type 1: CRM fields (merged) and columns of the lead whose primary number matches."""
    acme = await tenant(api)
    rows = [
        {"numeric": "9876500001", CUSTOMER_ID: "C-1", CITY: "Pune"},
        {"numeric": "9876500002", CUSTOMER_ID: "C-2", CITY: "Goa"},
    ]
    assert await insert(api, acme, *rows) == COMPLETED
    body = update(
        "numeric",
        {"numeric": "09876500001", CITY: "Mumbai", "first_name": "Asha"},
        {"numeric": "9876500002", CITY: "", "first_name": "Ravi"},
    )
    assert await run(api, acme, body) == COMPLETED
    found = by_number(await leads(api, acme))
    assert (found["9876500001"]["crm"], found["9876500001"]["first_name"]) == (
        {CUSTOMER_ID: "C-1", CITY: "Mumbai"},
        "Asha",
    )
    # A blank cell changes nothing.
    assert (found["9876500002"]["crm"], found["9876500002"]["first_name"]) == (
        {CUSTOMER_ID: "C-2", CITY: "Goa"},
        "Ravi",
    )


async def test_type2_update_by_crm_field_applies_to_every_match(api: Client) -> None:
    """Type 2: every live lead with the CRM value is updated, numeric becomes the primary."""
    acme = await tenant(api)
    rows = [
        {"numeric": "9876500001", "alt_numeric": "9876500011", CUSTOMER_ID: "C-1", CITY: "Pune"},
        {"numeric": "9876500002", CUSTOMER_ID: "C-1", CITY: "Goa"},
        {"numeric": "9876500003", CUSTOMER_ID: "C-3", CITY: "Goa"},
    ]
    assert await insert(api, acme, *rows) == COMPLETED
    body = update(CUSTOMER_ID, {CUSTOMER_ID: "C-1", CITY: "Delhi", "numeric": "9876500099"})
    assert await run(api, acme, body) == COMPLETED
    found = await leads(api, acme)
    assert [(lead["phone_numbers"], lead["crm"][CITY]) for lead in found] == [
        (["9876500099", "9876500011"], "Delhi"),
        (["9876500099"], "Delhi"),
        (["9876500003"], "Goa"),
    ]
    assert found[0]["dedupe_keys"] == ["+919876500099", "+919876500011"]
    response = await api.get(f"/v1/leads/{found[0]['lead_id']}/history", headers=acme.native)
    (updated,) = [e for e in (await response.json())["events"] if e["type"] == "LeadUpdated"]
    assert updated["actor"]["dialect"] == "flexydial"
    assert updated["changes"]["crm"]["new"] == {CUSTOMER_ID: "C-1", CITY: "Delhi"}


async def test_update_by_numeric_applies_to_every_live_lead_with_the_number(api: Client) -> None:
    """Two live leads of one campaign with one number (Ozonetel's AddCampaignData adds
    without a duplicate check): an update and a reassignment by `numeric` change both; the
    same number in another campaign and another number of the campaign stay untouched."""
    acme = await tenant(api)
    key = (await admin_post(api, "/accounts/acme/credentials", {"api": "ozonetel"}))["key"]
    added = [
        await api.post(
            ozonetel_add.PATH,
            json={"userName": "acme", "campaignName": campaign, "phoneNumber": number},
            headers={"apiKey": key},
        )
        for campaign, number in (
            ("sales", "9876500001"),
            ("sales", "09876500001"),
            ("open", "9876500001"),
        )
    ]
    assert [(r.status, (await r.json())["status"]) for r in added] == [(200, "Success")] * 3
    assert await insert(api, acme, {"numeric": "9876500002", CITY: "Goa"}) == COMPLETED
    twins = [lead for lead in await leads(api, acme) if lead["dedupe_keys"] == ["+919876500001"]]
    assert len(twins) == 2

    changed = update("numeric", {"numeric": "+919876500001", CITY: "Delhi", "first_name": "Asha"})
    job_id = await upload(api, acme, changed)
    assert await settled(api, acme, job_id) == COMPLETED
    reassign = await upload(api, acme, update("numeric", {"numeric": "9876500001", "user": "a2"}))
    assert await settled(api, acme, reassign) == COMPLETED

    twin_ids = {lead["lead_id"] for lead in twins}
    after = [(lead["lead_id"] in twin_ids, lead) for lead in await leads(api, acme)]
    assert [(twin, lead["crm"], lead["first_name"], lead["agent"]) for twin, lead in after] == [
        (True, {CITY: "Delhi"}, "Asha", "a2"),
        (True, {CITY: "Delhi"}, "Asha", "a2"),
        (False, {CITY: "Goa"}, None, None),
    ]
    (elsewhere,) = await leads(api, acme, "open")
    assert (elsewhere["crm"], elsewhere["first_name"], elsewhere["agent"]) == ({}, None, None)
    histories = [
        [e["type"] for e in await history(api, acme, lead_id)]
        for lead_id in [*sorted(twin_ids), elsewhere["lead_id"]]
    ]
    changed_twice = ["LeadInserted", "LeadUpdated", "LeadReassigned"]
    assert histories == [changed_twice, changed_twice, ["LeadInserted"]]
    counts = []
    for job in (job_id, reassign):
        response = await api.get(f"/v1/jobs/{job}", headers=acme.native)
        view = (await response.json())["counts"]
        counts.append((view["updated"], view["reassigned"], view["rejected"]))
    assert counts == [(2, 0, 0), (0, 2, 0)]


async def test_update_alternates_priority_email(api: Client) -> None:
    """alt_numeric replaces the numbers after the primary; priority and email are set."""
    acme = await tenant(api)
    assert (
        await insert(api, acme, {"numeric": "9876500001", "alt_numeric": "9876500002"}) == COMPLETED
    )
    body = update(
        "numeric",
        {
            "numeric": "9876500001",
            "alt_numeric": "9876500005,9876500006",
            "priority": "9",
            "email": "a@example.com",
            "last_name": "Rao",
        },
    )
    assert await run(api, acme, body) == COMPLETED
    (lead,) = await leads(api, acme)
    assert (lead["phone_numbers"], lead["priority"], lead["email"], lead["last_name"]) == (
        ["9876500001", "9876500005", "9876500006"],
        9,
        "a@example.com",
        "Rao",
    )


async def test_type3_reassignment_by_numeric(api: Client) -> None:
    """Type 3: `user` reassigns the lead found by number; LeadReassigned is in its history."""
    acme = await tenant(api)
    assert (
        await insert(api, acme, {"numeric": "9876500001", "user": "a1"}, {"numeric": "9876500002"})
        == COMPLETED
    )
    body = update(
        "numeric", {"user": "a2", "numeric": "9876500001"}, {"user": AGENT, "numeric": "9876500002"}
    )
    job_id = await upload(api, acme, body)
    assert await settled(api, acme, job_id) == COMPLETED
    first, second = await leads(api, acme)
    assert (first["agent"], second["agent"]) == ("a2", AGENT)
    reassigned = [
        e for e in await history(api, acme, first["lead_id"]) if e["type"] == "LeadReassigned"
    ]
    assert [(e["changes"], e["job_id"]) for e in reassigned] == [
        ({"agent": {"old": "a1", "new": "a2"}}, job_id)
    ]
    response = await api.get(f"/v1/jobs/{job_id}", headers=acme.native)
    counts = (await response.json())["counts"]
    assert (counts["reassigned"], counts["updated"], counts["rejected"]) == (2, 0, 0)


async def test_type4_reassignment_by_crm_field(api: Client) -> None:
    """Type 4: reassignment of every lead with the CRM unique id."""
    acme = await tenant(api)
    rows = [
        {"numeric": "9876500001", CUSTOMER_ID: "C-1"},
        {"numeric": "9876500002", CUSTOMER_ID: "C-1"},
        {"numeric": "9876500003", CUSTOMER_ID: "C-3"},
    ]
    assert await insert(api, acme, *rows) == COMPLETED
    body = update(
        CUSTOMER_ID, {"user": "a1", CUSTOMER_ID: "C-1"}, {"user": "a2", CUSTOMER_ID: "C-3"}
    )
    assert await run(api, acme, body) == COMPLETED
    found = await leads(api, acme)
    assert [lead["agent"] for lead in found] == ["a1", "a1", "a2"]
    for lead in found:
        types = [e["type"] for e in await history(api, acme, lead["lead_id"])]
        assert types == ["LeadInserted", "LeadReassigned"]


async def test_update_row_problems(api: Client) -> None:
    """Unknown user, reference not found, blank reference and bad values are improper_data."""
    acme = await tenant(api)
    assert (
        await insert(api, acme, {"numeric": "9876500001", "alt_numeric": "9876500002"}) == COMPLETED
    )
    rows = [
        {"numeric": "9876500001", "user": "nobody", "alt_numeric": ""},
        {"numeric": "9876500003", "user": "a1", "alt_numeric": ""},
        {"numeric": "9876500002", "user": "a1", "alt_numeric": ""},
        {"numeric": "  ", "user": "a1", "alt_numeric": ""},
        {"numeric": "9876500001", "user": "a1", "alt_numeric": "1,2,3,4,5,6"},
        {"numeric": "9876500001", "user": "a1", "alt_numeric": "12"},
        {"numeric": "9876500001", "user": "a2", "alt_numeric": ""},
    ]
    result = await run(api, acme, update("numeric", *rows))
    not_found = said(duplicate_check="the numeric is not exist in campaign, please insert first")
    assert result == {
        "status": "Invalid Data",
        "improper_data": [
            {**rows[0], "description": said(user=UNKNOWN_USER)},
            {**rows[1], "description": not_found},
            # An alternate number finds no lead: numeric is the primary number.
            {**rows[2], "description": not_found},
            {**rows[3], "description": said(duplicate_check="the numeric should not be blank")},
            {
                **rows[4],
                "description": said(alt_numeric="More than 5 alternate numbers are not allowed"),
            },
            {**rows[5], "description": said(alt_numeric="Enter Valid Number")},
        ],
    }
    (lead,) = await leads(api, acme)
    assert (lead["agent"], lead["phone_numbers"]) == ("a2", ["9876500001", "9876500002"])


async def test_crm_reference_not_found(api: Client) -> None:
    """A CRM value no live lead has: the CRM field's not-exist description, the field named
    by its field name with spaces, as Flexydial names it."""
    acme = await tenant(api)
    assert await insert(api, acme, {"numeric": "9876500001", CUSTOMER_ID: "C-1"}) == COMPLETED
    rows = [{CUSTOMER_ID: "C-9", CITY: "Pune"}, {CUSTOMER_ID: "", CITY: "Pune"}]
    result = await run(api, acme, update(CUSTOMER_ID, *rows))
    assert result["improper_data"] == [
        {
            **rows[0],
            "description": '{"duplicate_check": "the customer id is not exist in campaign,'
            ' please insert first"}',
        },
        {**rows[1], "description": '{"duplicate_check": "the customer id should not be blank"}'},
    ]


async def test_rows_finding_one_lead_apply_in_order(api: Client) -> None:
    """Two rows for one lead: both apply, the later wins a field, CRM fields merge."""
    acme = await tenant(api)
    assert (
        await insert(api, acme, {"numeric": "9876500001", CUSTOMER_ID: "C-1", CITY: "Pune"})
        == COMPLETED
    )
    body = update(
        "numeric",
        {"numeric": "9876500001", "first_name": "Asha", CITY: "Goa"},
        {"numeric": "9876500001", "first_name": "Ravi", CITY: ""},
    )
    assert await run(api, acme, body) == COMPLETED
    (lead,) = await leads(api, acme)
    assert (lead["first_name"], lead["crm"][CITY]) == ("Ravi", "Goa")
    updates = [e for e in await history(api, acme, lead["lead_id"]) if e["type"] == "LeadUpdated"]
    assert len(updates) == 1


async def test_seed_update_types_as_written(api: Client) -> None:
    """Seed 000's types 1-3 with their placeholder values: accepted, every row refused."""
    acme = await tenant(api)
    type1 = update(
        "numeric", *[{"numeric": "value", F1: "value", F2: "value"}] * 2, campaign=CAMPAIGN
    )
    type2 = update(F1, *[{F1: "value", F2: "value", "numeric": "value"}] * 2, campaign=CAMPAIGN)
    type3 = update("numeric", *[{"user": AGENT, "numeric": "value"}] * 2, campaign=CAMPAIGN)
    not_found = said(duplicate_check="the numeric is not exist in campaign, please insert first")
    expected = [
        (type1, not_found),
        (type2, said(number="Enter Valid Number")),
        (type3, not_found),
    ]
    for body, description in expected:
        result = await run(api, acme, body)
        assert result == {
            "status": "Invalid Data",
            "improper_data": [{**row, "description": description} for row in body["bulk_data"]],
        }


async def test_update_only_touches_the_campaign(api: Client) -> None:
    """A reference value found in another campaign of the account is not found here."""
    acme = await tenant(api)
    assert await insert(api, acme, {"numeric": "9876500001"}, campaign="open") == COMPLETED
    result = await run(api, acme, update("numeric", {"numeric": "9876500001", "user": "a1"}))
    assert result["improper_data"][0]["description"] == (
        said(duplicate_check="the numeric is not exist in campaign, please insert first")
    )
    (lead,) = await leads(api, acme, "open")
    assert lead["agent"] is None


async def test_upload_refs_are_unique(api: Client) -> None:
    """Each accepted upload has its own reference, and the job id is a string."""
    acme = await tenant(api)
    body = {"campaign": "sales", "bulk_data": [{"numeric": "9876500001"}]}
    answers = []
    for _ in range(2):
        response = await api.post("/api/bulkphonebookupload/v1/", json=body, headers=acme.headers)
        answers.append(await response.json())
    assert answers[0]["success"] != answers[1]["success"]
    assert all(isinstance(a["job_id"], str) and a["job_id"].isdigit() for a in answers)
    response = await api.get(f"/v1/jobs/{answers[0]['job_id']}", headers=acme.native)
    view = await response.json()
    assert f"Reference/Phonebook Name:{view['upload_ref']}" == answers[0]["success"]
    assert (view["kind"], view["dialect"]) == ("flexydial_insert", "flexydial")
    assert view["counts"]["received"] == 1
