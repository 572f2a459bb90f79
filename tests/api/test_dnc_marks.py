"""Live leads of a number blocked after they were loaded are marked: `DNC` in every read with a
status, with LeadMarkedDnc in their history; removing the entry, turning it Inactive or moving
its expiry into the past clears the mark (LeadDncCleared) and their own status comes back. An
expiry that passes needs no event: reads compare it with their time. Every test ends with
`projections verify`, so the marks come out of a rebuild exactly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.api.test_dnc_dialects import DND, block, native_of
from tests.api.test_flexydial import CUSTOMER_ID, Tenant, tenant, update
from tests.api.test_flexydial_jobs import COMPLETED, api, insert, run
from tests.api.test_jtel import Tenant as JtelTenant
from tests.api.test_jtel import call, contact, import_, make_tenant
from tests.api.test_ozonetel_add import ADMIN, Account, body, make_account, post
from tests.api.test_vicidial import ALL, ARCHIVE, DEARCHIVE, add_leads, counts
from tests.api.test_vicidial import account as vicidial_account
from tests.api.test_vicidial import post as vicidial_post
from tests.support import Client

__all__ = ["api"]  # the app with its job worker: a fixture, imported to be found here


async def add(api: Client, acme: Account, phone: str, campaign: str = "sales") -> int:
    """An Ozonetel AddCampaignData insert (no duplicate check); the new lead's id."""
    answer = await post(api, acme, body(acme, phoneNumber=phone, campaignName=campaign))
    assert answer[1]["status"] == "Success", answer
    return await last_lead_id(api, acme)


async def last_lead_id(api: Client, acme: Account) -> int:
    leads = await all_leads(api, native_of(acme))
    return int(max(lead["lead_id"] for lead in leads))


async def all_leads(api: Client, native: dict[str, str]) -> list[dict[str, Any]]:
    response = await api.get("/v1/leads?limit=1000", headers=native)
    assert response.status == 200
    leads: list[dict[str, Any]] = (await response.json())["leads"]
    return leads


async def lead(api: Client, native: dict[str, str], lead_id: int, query: str = "") -> Any:
    response = await api.get(f"/v1/leads/{lead_id}{query}", headers=native)
    assert response.status == 200, await response.text()
    return await response.json()


async def marks_of(api: Client, native: dict[str, str], lead_id: int) -> list[tuple[str, Any]]:
    """The lead's do-not-call events in order: (type, entry id or the clearing reason)."""
    response = await api.get(f"/v1/leads/{lead_id}/history", headers=native)
    assert response.status == 200
    shown = []
    for event in (await response.json())["events"]:
        data = event["data"]
        if event["type"] == "LeadMarkedDnc":
            shown.append(("marked", data["dnc_entry_id"]))
        elif event["type"] == "LeadDncCleared":
            shown.append(("cleared", data["reason"]))
    return shown


async def patch(api: Client, native: dict[str, str], entry: int, **change: Any) -> None:
    response = await api.patch(f"/v1/dnc/{entry}", json=change, headers=native)
    assert response.status == 200, await response.text()


async def test_a_number_blocked_later_marks_its_leads_until_the_entry_is_removed(
    api: Client,
) -> None:
    """An account-wide entry marks the lead in every campaign (any spelling), a campaign's only
    there; reads say DNC with dnc true; removing the entry restores the lead's own status."""
    acme = await make_account(api)
    native = native_of(acme)
    in_sales = await add(api, acme, "9876543210")
    in_second = await add(api, acme, "+919876543210", campaign="second")
    other = await add(api, acme, "9812345678", campaign="second")
    before = await lead(api, native, in_sales)
    assert (before["status"], before["dnc"]) == ("new", False)

    (everywhere,) = await block(api, native, {"phone": "098765-43210"})
    (only_sales,) = await block(api, native, {"phone": "9812345678", "campaign": "sales"})
    for lead_id in (in_sales, in_second):
        seen = await lead(api, native, lead_id)
        assert (seen["status"], seen["dnc"]) == ("DNC", True)
        assert seen["version"] == before["version"] + 1
        assert (
            seen["modified_at"]
            == (await lead(api, native, lead_id, "?as_of_version=1"))["modified_at"]
        ), "a mark is not a change of the lead's fields"
        assert await marks_of(api, native, lead_id) == [("marked", everywhere)]
    unmarked = await lead(api, native, other)
    assert (unmarked["status"], unmarked["dnc"]) == ("new", False), "blocked in sales only"
    listed = {row["lead_id"]: row for row in await all_leads(api, native)}
    assert [listed[i]["status"] for i in (in_sales, in_second, other)] == ["DNC", "DNC", "new"]

    response = await api.delete(f"/v1/dnc/{everywhere}", headers=native)
    assert response.status == 204
    for lead_id in (in_sales, in_second):
        seen = await lead(api, native, lead_id)
        assert (seen["status"], seen["dnc"]) == ("new", False)
        assert await marks_of(api, native, lead_id) == [
            ("marked", everywhere),
            ("cleared", "removed"),
        ]
    assert only_sales != everywhere


async def test_inactive_active_and_expiry_changes_clear_and_mark_again(api: Client) -> None:
    """Inactive clears; Active again marks again; an expiry in the future re-marks with it; an
    expiry in the past clears (reason expired)."""
    acme = await make_account(api)
    native = native_of(acme)
    lead_id = await add(api, acme, "9876543210")
    (entry,) = await block(api, native, {"phone": "9876543210"})
    await patch(api, native, entry, status="Inactive")
    assert (await lead(api, native, lead_id))["status"] == "new"
    await patch(api, native, entry, status="Active")
    assert (await lead(api, native, lead_id))["status"] == "DNC"
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    await patch(api, native, entry, expires_at=later)
    assert (await lead(api, native, lead_id))["status"] == "DNC"
    await patch(api, native, entry, expires_at=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    assert (await lead(api, native, lead_id))["status"] == "new"
    assert await marks_of(api, native, lead_id) == [
        ("marked", entry),
        ("cleared", "inactive"),
        ("marked", entry),
        ("marked", entry),
        ("cleared", "expired"),
    ]


async def test_an_expiry_passes_without_an_event(api: Client, pool: asyncpg.Pool) -> None:
    """A mark whose entry expires reads DNC before the expiry and the lead's own status after
    it, live and as of a time, with no event written in between."""
    acme = await make_account(api)
    native = native_of(acme)
    lead_id = await add(api, acme, "9876543210")
    expires = datetime.now(UTC) + timedelta(seconds=2)
    await block(api, native, {"phone": "9876543210", "expires_at": expires.isoformat()})
    assert (await lead(api, native, lead_id))["status"] == "DNC"
    events = await pool.fetchval("SELECT count(*) FROM events")
    just_before = (expires - timedelta(milliseconds=500)).isoformat().replace("+00:00", "Z")
    just_after = (expires + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert (await lead(api, native, lead_id, f"?as_of={just_before}"))["status"] == "DNC"
    assert (await lead(api, native, lead_id, f"?as_of={just_after}"))["status"] == "new"
    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.2)
    seen = await lead(api, native, lead_id)
    assert (seen["status"], seen["dnc"]) == ("new", False)
    assert await pool.fetchval("SELECT count(*) FROM events") == events


async def test_an_inactive_or_expired_entry_marks_nothing(api: Client) -> None:
    """Added Inactive or already expired: the lead holding the number stays as it was."""
    acme = await make_account(api)
    native = native_of(acme)
    first = await add(api, acme, "9876543210")
    second = await add(api, acme, "9812345678")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await block(
        api,
        native,
        {"phone": "9876543210", "status": "Inactive"},
        {"phone": "9812345678", "expires_at": past},
    )
    for lead_id in (first, second):
        assert (await lead(api, native, lead_id))["status"] == "new"
        assert await marks_of(api, native, lead_id) == []


async def test_jtel_contact_with_a_blocked_number_is_marked_and_cleared_by_overwrite(
    api: Client,
) -> None:
    """Imported with one of two numbers blocked: flagged in its slot and marked; an overwrite
    that drops that number clears the mark (number_changed); one that brings a blocked number
    back (with another still free) marks it again."""
    acme: JtelTenant = await make_tenant(api, "acme", "DE", ["Sales"])
    native = {"Authorization": f"Bearer {acme.native_key}"}
    (entry,) = await block(api, native, {"phone": "+4930222222"})
    first = contact(acme, UserData="U-1", PhoneNumber1="+4930111111", PhoneNumber2="+4930222222")
    contact_id = (await import_(api, acme, first))["records"][0]["ID"]
    assert (await lead(api, native, contact_id))["status"] == "DNC"
    overwrite = "?overwriteDuplicates=true"
    await import_(
        api, acme, contact(acme, UserData="U-1", PhoneNumber1="+4930111111"), query=overwrite
    )
    assert (await lead(api, native, contact_id))["status"] == "new"
    back = contact(acme, UserData="U-1", PhoneNumber1="+4930333333", PhoneNumber2="+4930222222")
    await import_(api, acme, back, query=overwrite)
    assert (await lead(api, native, contact_id))["status"] == "DNC"
    got = await call(api, "GET", f"{acme.base}/dialler/contacts/{contact_id}", acme, 200)
    assert got["records"][0]["bPhoneNumber2Invalid"] is True
    assert await marks_of(api, native, contact_id) == [
        ("marked", entry),
        ("cleared", "number_changed"),
        ("marked", entry),
    ]


async def test_a_flexydial_update_away_from_a_blocked_number_clears_the_mark(api: Client) -> None:
    """A lead marked after loading, updated (by a CRM field) to a free number: cleared."""
    acme: Tenant = await tenant(api)
    assert await insert(api, acme, {"numeric": "9876500001", CUSTOMER_ID: "C-1"}) == COMPLETED
    (entry,) = await block(api, acme.native, {"phone": "9876500001"})
    (marked,) = await all_leads(api, acme.native)
    assert marked["status"] == "DNC"
    result = await run(
        api, acme, update(CUSTOMER_ID, {CUSTOMER_ID: "C-1", "numeric": "9876500002"})
    )
    assert result == COMPLETED
    (cleared,) = await all_leads(api, acme.native)
    assert (cleared["status"], cleared["phone_numbers"]) == ("new", ["9876500002"])
    assert await marks_of(api, acme.native, cleared["lead_id"]) == [
        ("marked", entry),
        ("cleared", "number_changed"),
    ]


async def test_twenty_inserts_racing_an_upload_end_refused_or_marked(
    api: Client, pool: asyncpg.Pool
) -> None:
    """Twenty AddCampaignData inserts of one number, started 10 ms apart in two campaigns,
    race the entry that blocks it (added once five inserts are in): each is refused (DND) or
    its lead is marked; no lead of the number is ever left dialable."""
    acme = await make_account(api)
    native = native_of(acme)

    async def insert_one(index: int) -> tuple[int, Any]:
        await asyncio.sleep(index * 0.01)
        campaign = "sales" if index % 2 else "second"
        return await post(api, acme, body(acme, phoneNumber="9876543210", campaignName=campaign))

    inserts = [asyncio.ensure_future(insert_one(i)) for i in range(20)]
    for _, landed in zip(range(5), asyncio.as_completed(inserts), strict=False):
        await landed  # range first: zip then takes no sixth waiter it would never await
    (entry,) = await block(api, native, {"phone": "+919876543210"})
    answers = await asyncio.gather(*inserts)
    refused = sum(answer == (200, DND) for answer in answers)
    added = sum(answer[1]["status"] == "Success" for answer in answers)
    assert refused + added == 20
    assert added >= 5, "five inserts landed before the entry"
    leads = await all_leads(api, native)
    assert len(leads) == added
    assert all(row["status"] == "DNC" and row["dnc"] for row in leads)
    marks = await pool.fetch("SELECT lead_id, entry_id FROM lead_dnc ORDER BY lead_id")
    assert [(r["lead_id"], r["entry_id"]) for r in marks] == [(r["lead_id"], entry) for r in leads]


async def test_a_dearchived_lead_whose_number_was_blocked_meanwhile_comes_back_marked(
    api: Client, pool: asyncpg.Pool
) -> None:
    """Archived (and deleted from live), its number blocked, then dearchived: restored as the
    archive API counts it, and marked, never dialable; a lead restored with free numbers is
    not."""
    acct = await vicidial_account(pool)
    native = {"Authorization": f"Bearer {acct.native_key}"}
    blocked, free = await add_leads(pool, acct, 2)
    ids = {"lead_ids": [blocked, free]}
    assert await vicidial_post(api, ARCHIVE, {**ALL, **ids}, acct.key) == (200, counts(2, 2, 0, 2))
    number = (
        await pool.fetchval("SELECT phone_numbers FROM lead_archive WHERE lead_id = $1", blocked)
    )[0]
    (entry,) = await block(api, native, {"phone": number})
    restore = {"insert_leads": True, "delete_leads": True, **ids}
    assert await vicidial_post(api, DEARCHIVE, restore, acct.key) == (200, counts(2, 2, 0, 2))
    statuses = [(await lead(api, native, i))["status"] for i in (blocked, free)]
    assert statuses == ["DNC", "new"]
    assert await marks_of(api, native, blocked) == [("marked", entry)]


async def test_account_wide_entries_campaign_creation_and_actions_run_together(
    api: Client,
) -> None:
    """Account-wide entries (every campaign's lock, then the account's), campaigns created (the
    account's) and AddCampaignData inserts that start or stop their campaign (its lock, then the
    account's), all at once: every request is answered as it would be alone, none deadlocks."""
    acme = await make_account(api)
    native = native_of(acme)
    campaigns = ["sales", "second"]

    async def act(index: int) -> tuple[int, Any]:
        action = "start" if index % 2 else "stop"
        phone = f"98765{index:05d}"
        return await post(
            api,
            acme,
            body(acme, phoneNumber=phone, campaignName=campaigns[index % 2], action=action),
        )

    async def entry(index: int) -> int:
        response = await api.post("/v1/dnc", json=[{"phone": f"91234{index:05d}"}], headers=native)
        return response.status

    async def campaign(index: int) -> int:
        response = await api.post(
            f"/v1/admin/accounts/{acme.name}/campaigns",
            json={"name": f"new-{index}"},
            headers=ADMIN,
        )
        return response.status

    answers = await asyncio.gather(
        *(act(i) for i in range(24)),
        *(entry(i) for i in range(8)),
        *(campaign(i) for i in range(6)),
    )
    actions, entries, created = answers[:24], answers[24:32], answers[32:]
    assert [(status, answer["status"].lower()) for status, answer in actions] == [
        (200, "success")
    ] * 24
    assert entries == [201] * 8
    assert created == [201] * 6
