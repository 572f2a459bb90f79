"""Each dialect's insert honours the do-not-call registry: a number blocked account-wide or in
the campaign is refused with the dialect's own answer, in every spelling; an Inactive or
expired entry blocks nothing; every refusal names the entry that caused it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from tests.api.test_flexydial import CITY, CUSTOMER_ID, Tenant, leads, tenant, update
from tests.api.test_flexydial_jobs import COMPLETED, api, insert, run
from tests.api.test_jtel import Tenant as JtelTenant
from tests.api.test_jtel import call, contact, import_, make_tenant
from tests.api.test_ozonetel_add import Account, body, make_account, post
from tests.api.test_ozonetel_bulk import ACCEPTED, make_client, upload, write_csv
from tests.api.test_ozonetel_bulk import make_account as make_bulk_account
from tests.api.test_ozonetel_bulk_jobs import Receiver, last_job, receiver, settled
from tests.support import Client

__all__ = ["api", "make_client", "receiver"]  # fixtures, imported to be found here

DND = {"status": "FAIL", "message": "PhoneNumber Added is a DND Number"}
# Flexydial's descriptions: the failed check's text under its key, as its code dumps them.
GLOBALLY = '{"number": "This number is blocked globally"}'
IN_CAMPAIGN = '{"number": "This number is blocked in this campaign"}'


async def block(client: Client, native: dict[str, str], *entries: dict[str, Any]) -> list[int]:
    response = await client.post("/v1/dnc", json=list(entries), headers=native)
    assert response.status == 201, await response.text()
    return [e["entry_id"] for e in (await response.json())["entries"]]


def native_of(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.native_key}"}


async def refusals(pool: asyncpg.Pool) -> list[tuple[str, int | None, str | None]]:
    rows = await pool.fetch(
        "SELECT data->>'reason' AS reason, (data->>'dnc_entry_id')::bigint AS entry,"
        " data->>'dnc_scope' AS scope FROM events WHERE type = 'LeadRejected' ORDER BY position"
    )
    return [(r["reason"], r["entry"], r["scope"]) for r in rows]


async def test_ozonetel_add_answers_dnd_for_a_blocked_number(
    api: Client, pool: asyncpg.Pool
) -> None:
    """Blocked account-wide: refused in every campaign and spelling, before checkDuplicate;
    blocked in `sales`: refused there, added in `second`; Inactive and expired entries do not
    block. Each refusal is a LeadRejected naming the entry; nothing else is written."""
    acme = await make_account(api)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    everywhere, in_sales, _, _ = await block(
        api,
        native_of(acme),
        {"phone": "9876543210"},
        {"phone": "9812345678", "campaign": "sales"},
        {"phone": "9800000001", "status": "Inactive"},
        {"phone": "9800000002", "expires_at": past},
    )
    for spelling in ("9876543210", "+919876543210", "09876543210"):
        for campaign in ("sales", "second"):
            answer = await post(api, acme, body(acme, phoneNumber=spelling, campaignName=campaign))
            assert answer == (200, DND), (spelling, campaign)
    # Blocked wins over checkDuplicate: the answer is DND, not "Number Already Exist".
    dup = body(acme, phoneNumber="9876543210", checkDuplicate="true")
    assert await post(api, acme, dup) == (200, DND)
    assert await post(api, acme, body(acme, phoneNumber="9812345678")) == (200, DND)
    added = await post(api, acme, body(acme, phoneNumber="9812345678", campaignName="second"))
    assert added[1]["status"] == "Success"
    for number in ("9800000001", "9800000002"):
        assert (await post(api, acme, body(acme, phoneNumber=number)))[1]["status"] == "Success"
    # With an action the refusal comes before it: the campaign is not started.
    started = await post(api, acme, body(acme, phoneNumber="9876543210", action="start"))
    assert started == (200, DND)
    numbers = {r["phone_numbers"][0] for r in await pool.fetch("SELECT * FROM leads")}
    assert numbers == {"9812345678", "9800000001", "9800000002"}
    assert await refusals(pool) == [
        *[("dnc", everywhere, "account")] * 7,
        ("dnc", in_sales, "campaign"),
        ("dnc", everywhere, "account"),
    ]


async def test_ozonetel_file_upload_refuses_the_blocked_rows_and_loads_the_rest(
    make_client: Callable[..., Awaitable[Client]],
    pool: asyncpg.Pool,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """No file error: the blocked row is a rejected row of the job (with its entry), the
    others are loaded, and the callback reports success."""
    client = await make_client()
    acme = await make_bulk_account(client)
    native = {"Authorization": f"Bearer {acme.native_key}"}
    (entry,) = await block(client, native, {"phone": "+91 98765 43210"})
    rows = [["PhoneNumber", "Name"], ["9876500001", "Asha"], ["098765-43210", "Ravi"]]
    data = write_csv(tmp_path / "leads.csv", rows)
    sent = await upload(client, acme, data, "leads.csv", callBackUrl=receiver.url)
    assert sent == (200, ACCEPTED)
    assert (await receiver.next())["status"] == "success"
    job = await settled(client, acme, await last_job(pool), lambda j: j["state"] == "done")
    assert (job["counts"]["inserted"], job["counts"]["rejected"]) == (1, 1)
    (row,) = job["rejected_rows"]
    assert row["row_number"] == 2
    assert row["description"] == "PhoneNumber Added is a DND Number"
    assert (row["dnc_entry_id"], row["dnc_scope"]) == (entry, "account")
    names = [r["name"] for r in await pool.fetch("SELECT name FROM leads")]
    assert names == ["Asha"]


async def test_flexydial_insert_rejects_blocked_rows_with_its_descriptions(api: Client) -> None:
    """ "blocked globally" for an account-wide entry, "blocked in this campaign" for the
    campaign's, before the duplicate check; the status check lists them as Invalid Data."""
    acme: Tenant = await tenant(api)
    response = await api.post(
        "/v1/dnc",
        json=[{"phone": "9876500001"}, {"phone": "9876500002", "campaign": "sales"}],
        headers=acme.native,
    )
    assert response.status == 201
    assert await insert(api, acme, {"numeric": "9876500003"}) == COMPLETED
    result = await insert(
        api,
        acme,
        {"numeric": "+919876500001"},
        {"numeric": "9876500002"},
        {"numeric": "9876500003"},
        {"numeric": "9876500004"},
    )
    assert result == {
        "status": "Invalid Data",
        "improper_data": [
            {"numeric": "+919876500001", "description": GLOBALLY},
            {"numeric": "9876500002", "description": IN_CAMPAIGN},
            {
                "numeric": "9876500003",
                "description": '{"duplicate_check": "contact with this numeric value is already'
                ' exist in sales campaign"}',
            },
        ],
    }
    assert await insert(api, acme, {"numeric": "9876500002"}, campaign="open") == COMPLETED
    numbers = sorted(lead["phone_numbers"][0] for lead in await leads(api, acme))
    assert numbers == ["9876500003", "9876500004"]


async def test_jtel_flags_blocked_numbers_and_refuses_a_contact_with_no_other(
    api: Client,
) -> None:
    """A blocked number stays in its slot, flagged invalid (never dialable), in the import's
    answer and in later reads; a contact whose every number is blocked is a 409."""
    acme: JtelTenant = await make_tenant(api, "acme", "DE", ["Sales"])
    native = {"Authorization": f"Bearer {acme.native_key}"}
    await block(api, native, {"phone": "+91 98765 43210"})
    answer = await import_(
        api, acme, contact(acme, PhoneNumber1="+49 30 1234567", PhoneNumber2="+919876543210")
    )
    (record,) = answer["records"]
    assert record["bPhoneNumber1Invalid"] is None
    assert record["bPhoneNumber2Invalid"] is True
    got = await call(api, "GET", f"{acme.base}/dialler/contacts/{record['ID']}", acme, 200)
    assert got["records"][0]["bPhoneNumber2Invalid"] is True
    refused = await import_(api, acme, contact(acme, PhoneNumber1="+91 98765-43210"), status=409)
    assert refused == {
        "status": 409,
        "error": "All phone numbers of the contact are on a do-not-call list",
    }


async def test_flexydial_update_to_a_blocked_number_leaves_the_lead_as_it_was(
    api: Client,
) -> None:
    """An update by a CRM field that would give the lead a blocked number refuses its row as
    an insert would be refused; the lead keeps its number, the other rows apply."""
    acme: Tenant = await tenant(api)
    rows = [
        {"numeric": "9876500001", CUSTOMER_ID: "C-1"},
        {"numeric": "9876500002", CUSTOMER_ID: "C-2"},
    ]
    assert await insert(api, acme, *rows) == COMPLETED
    response = await api.post("/v1/dnc", json=[{"phone": "9876500099"}], headers=acme.native)
    assert response.status == 201
    body = update(
        CUSTOMER_ID,
        {CUSTOMER_ID: "C-1", "numeric": "9876500099", CITY: "Pune"},
        {CUSTOMER_ID: "C-2", "numeric": "9876500002", CITY: "Goa"},
    )
    result = await run(api, acme, body)
    assert result == {
        "status": "Invalid Data",
        "improper_data": [
            {CUSTOMER_ID: "C-1", "numeric": "9876500099", CITY: "Pune", "description": GLOBALLY}
        ],
    }
    found = {lead["crm"][CUSTOMER_ID]: lead for lead in await leads(api, acme)}
    assert found["C-1"]["phone_numbers"] == ["9876500001"]
    assert CITY not in found["C-1"]["crm"]
    assert found["C-2"]["crm"][CITY] == "Goa"


async def test_jtel_overwrite_to_blocked_numbers_only_is_refused(api: Client) -> None:
    """Overwriting a contact (by UserData) with numbers that are all blocked: 409, and the
    contact keeps its numbers."""
    acme: JtelTenant = await make_tenant(api, "acme", "DE", ["Sales"])
    native = {"Authorization": f"Bearer {acme.native_key}"}
    first = await import_(api, acme, contact(acme, UserData="U-1", PhoneNumber1="+4930111111"))
    contact_id = first["records"][0]["ID"]
    await block(api, native, {"phone": "+4930222222"})
    overwrite = contact(acme, UserData="U-1", PhoneNumber1="+4930222222")
    refused = await import_(api, acme, overwrite, status=409, query="?overwriteDuplicates=true")
    assert refused["error"] == "All phone numbers of the contact are on a do-not-call list"
    got = await call(api, "GET", f"{acme.base}/dialler/contacts/{contact_id}", acme, 200)
    assert got["records"][0]["PhoneNumber1"] == "+4930111111"


async def test_a_blocked_number_with_notes_or_odd_separators_is_refused(
    api: Client, pool: asyncpg.Pool
) -> None:
    """A comma, a note in brackets, an underscore (jtel takes numbers as written) or a trunk 0
    before the country code (AddCampaignData): still the blocked number, refused; and once the
    entry is gone, a contact so written is found by an erasure of the plain E.164 spelling."""
    acme: JtelTenant = await make_tenant(api, "acme", "IN", ["Sales"])
    native = {"Authorization": f"Bearer {acme.native_key}"}
    (entry,) = await block(api, native, {"phone": "9891111111"})
    for spelling in ("98911,11111", "9891111111 (mobile)", "98911_11111"):
        await import_(api, acme, contact(acme, PhoneNumber1=spelling), status=409)
    ozonetel = await make_account(api, "other")
    await block(api, native_of(ozonetel), {"phone": "9891111111"})
    assert await post(api, ozonetel, body(ozonetel, phoneNumber="0919891111111")) == (200, DND)
    removed = await api.delete(f"/v1/dnc/{entry}", headers=native)
    assert removed.status == 204, await removed.text()
    await import_(api, acme, contact(acme, PhoneNumber1="9891111111 (mobile)"))
    erased = await api.post("/v1/erasures", json={"phone": "+91 98911 11111"}, headers=native)
    assert len((await erased.json())["lead_ids"]) == 1
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0
