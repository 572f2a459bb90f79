"""`POST /v1/erasures` and `GET /v1/erasures/{id}` through the real app: what an erasure finds,
what it leaves readable, what it refuses, and what a client sees of an erased lead afterwards."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.api.test_flexydial import tenant as flexydial_tenant
from tests.api.test_flexydial_jobs import insert as flexydial_insert
from tests.api.test_jtel import contact, imported_id, make_tenant
from tests.api.test_ozonetel_add import Account, add, admin, make_account
from tests.support import Client

ERASURES = "/v1/erasures"


@pytest.fixture
async def acme(client: Client) -> Account:
    return await make_account(client)


def native(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.native_key}"}


async def lead_ids(pool: asyncpg.Pool) -> dict[str, int]:
    """Live leads by name."""
    return {r["name"]: r["lead_id"] for r in await pool.fetch("SELECT name, lead_id FROM leads")}


async def erase(client: Client, account: Account, body: object) -> Any:
    response = await client.post(ERASURES, json=body, headers=native(account))
    assert response.status == 200, await response.text()
    return await response.json()


async def test_erasing_by_phone_finds_every_spelling_and_spares_the_others(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A number written three ways is one subject per lead; another lead stays as it was."""
    await add(client, acme, Name="Asha", phoneNumber="9876543210")
    await add(client, acme, Name="Asha again", phoneNumber="+919876543210", campaignName="second")
    await add(client, acme, Name="Ravi", phoneNumber="9812345678")
    ids = await lead_ids(pool)
    erasure = await erase(client, acme, {"phone": "098765-43210"})
    assert erasure["subjects"] == 2
    assert erasure["lead_ids"] == sorted([ids["Asha"], ids["Asha again"]])
    assert erasure["by"] == "phone"
    assert set(await lead_ids(pool)) == {"Ravi"}
    gone = await client.get(f"/v1/leads/{ids['Asha']}", headers=native(acme))
    assert gone.status == 404
    kept = await client.get(f"/v1/leads/{ids['Ravi']}", headers=native(acme))
    assert (await kept.json())["phone_numbers"] == ["9812345678"]


async def test_an_erased_lead_history_keeps_its_events_without_their_data(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """Every event is still there, marked erased, its personal fields null; the clear ones
    (campaign, status, priority) readable; the erasure's own event closes the stream."""
    await add(client, acme, Name="Asha", phoneNumber="9876543210", priority="3")
    lead_id = (await lead_ids(pool))["Asha"]
    await erase(client, acme, {"lead_id": lead_id})
    response = await client.get(f"/v1/leads/{lead_id}/history", headers=native(acme))
    assert response.status == 200
    events = (await response.json())["events"]
    assert [e["type"] for e in events] == ["LeadInserted", "LeadErased"]
    inserted = events[0]["data"]
    assert inserted["erased"] is True
    assert inserted["fields"]["name"] is None
    assert inserted["fields"]["phone_numbers"] is None
    assert inserted["fields"]["priority"] == 3
    assert "9876543210" not in await response.text()


async def test_an_erased_lead_as_of_before_its_erasure_shows_no_personal_data(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """As of a time or version before the erasure the lead was live: it is shown as it was,
    every personal field null (its key is gone), its clear fields kept, as an as-of export
    shows it; as of the erasure or later it is a 404, like the live read."""
    await add(client, acme, Name="Asha", phoneNumber="9876543210", priority=3)
    lead_id = (await lead_ids(pool))["Asha"]
    before = await pool.fetchval("SELECT clock_timestamp()")
    await erase(client, acme, {"lead_id": lead_id})
    after = await pool.fetchval("SELECT clock_timestamp()")
    for params in ({"as_of": before.isoformat()}, {"as_of_version": "1"}):
        then = await client.get(f"/v1/leads/{lead_id}", params=params, headers=native(acme))
        assert then.status == 200, params
        view = await then.json()
        assert (view["name"], view["phone_numbers"], view["dedupe_keys"]) == (None, [], [])
        assert (view["lead_id"], view["priority"], view["version"]) == (lead_id, 3, 1)
    erased_version = await pool.fetchval(
        "SELECT max(stream_version) FROM events WHERE stream_id = $1", f"lead-{lead_id}"
    )
    for params in (
        {"as_of": after.isoformat()},
        {"as_of_version": str(erased_version)},
        {},
    ):
        gone = await client.get(f"/v1/leads/{lead_id}", params=params, headers=native(acme))
        assert gone.status == 404, params


async def test_the_erasure_record_names_the_actor_and_not_the_value(
    client: Client, pool: asyncpg.Pool
) -> None:
    """Erased by user_data (a jtel contact's): GET returns what POST answered, with the
    credential that asked; the log keeps a keyed digest of the request, never the value."""
    tenant = await make_tenant(client, "acme", "DE", ["Sales"])
    kept = await imported_id(client, tenant, contact(tenant, UserData="CRM-2"))
    gone = await imported_id(client, tenant, contact(tenant, UserData="CRM-1", Name="Asha"))
    account = Account(name="acme", key=tenant.key, native_key=tenant.native_key)
    erasure = await erase(client, account, {"user_data": "CRM-1"})
    assert (erasure["subjects"], erasure["lead_ids"]) == (1, [gone])
    assert await pool.fetchval("SELECT user_data FROM leads WHERE lead_id = $1", kept) == "CRM-2"
    shown = await client.get(f"{ERASURES}/{erasure['erasure_id']}", headers=native(account))
    record = await shown.json()
    assert record == erasure
    assert record["actor"]["dialect"] == "native"
    stored = await pool.fetchval(
        "SELECT data::text FROM events WHERE type = 'SubjectErased' AND stream_id = $1",
        f"erasure-{erasure['erasure_id']}",
    )
    assert "CRM-1" not in stored
    assert "request_digest" in stored


async def test_an_erasure_that_finds_nothing_is_recorded_all_the_same(
    client: Client, acme: Account
) -> None:
    """Zero subjects, no lead ids, and a record to show who asked."""
    erasure = await erase(client, acme, {"phone": "9000000001"})
    assert (erasure["subjects"], erasure["lead_ids"]) == (0, [])
    shown = await client.get(f"{ERASURES}/{erasure['erasure_id']}", headers=native(acme))
    assert shown.status == 200


async def test_another_account_can_neither_erase_nor_see_the_erasure(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """A foreign lead id erases nothing; a foreign erasure id is not found."""
    await add(client, acme, Name="Asha")
    lead_id = (await lead_ids(pool))["Asha"]
    other = await make_account(client, "globex")
    theirs = await erase(client, other, {"lead_id": lead_id})
    assert theirs["subjects"] == 0
    assert "Asha" in await lead_ids(pool)
    mine = await erase(client, acme, {"lead_id": lead_id})
    foreign = await client.get(f"{ERASURES}/{mine['erasure_id']}", headers=native(other))
    assert foreign.status == 404


async def test_a_number_erased_and_added_again_is_a_new_lead(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """Nothing of the erased lead is compared with the new one: no duplicate, a new id."""
    await add(client, acme, Name="Asha")
    first = (await lead_ids(pool))["Asha"]
    await erase(client, acme, {"phone": "9876543210"})
    await add(client, acme, Name="Asha", checkDuplicate=True)
    second = (await lead_ids(pool))["Asha"]
    assert second != first


async def test_an_erased_lead_cannot_be_written_to_again(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """An erasure of the same lead twice finds nothing the second time; its key row stays a
    tombstone, so no writer can give the subject a new key."""
    await add(client, acme, Name="Asha")
    lead_id = (await lead_ids(pool))["Asha"]
    await erase(client, acme, {"lead_id": lead_id})
    again = await erase(client, acme, {"lead_id": lead_id})
    assert again["subjects"] == 0
    tombstone = await pool.fetchrow(
        "SELECT wrapped_key, erased_at FROM subject_keys WHERE subject_id = $1", f"lead-{lead_id}"
    )
    assert tombstone is not None
    assert tombstone["wrapped_key"] is None
    assert tombstone["erased_at"] is not None
    lookup = "SELECT count(*) FROM subject_lookup WHERE subject_id = $1"
    assert await pool.fetchval(lookup, f"lead-{lead_id}") == 0


@pytest.mark.parametrize(
    ("body", "detail", "field"),
    [
        ({}, "give exactly one of phone, lead_id and user_data", None),
        ({"phone": "98", "lead_id": 1}, "give exactly one of phone, lead_id and user_data", None),
        ({"phone": "  "}, "phone is empty", "phone"),
        ({"phone": "abc"}, "phone holds no digits: it is no phone number", "phone"),
        ({"phone": "+ ( ) -"}, "phone holds no digits: it is no phone number", "phone"),
        (
            {"phone": "9876543210, 9812345678"},
            "phone holds more than one number (separated by a comma): erase each on its own",
            "phone",
        ),
        ({"lead_id": 0}, "lead_id is not a lead id", "lead_id"),
        ({"user_data": "a\u0000b"}, "user_data holds a NUL character", "user_data"),
    ],
)
async def test_a_request_that_names_no_one_clearly_is_refused(
    client: Client, acme: Account, pool: asyncpg.Pool, body: object, detail: str, field: str | None
) -> None:
    """400 problem+json that says what is wrong and where; nothing is erased, and no erasure
    recorded."""
    await add(client, acme, Name="Asha", phoneNumber="9876543210")
    response = await client.post(ERASURES, json=body, headers=native(acme))
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert (problem["detail"], problem["field"]) == (detail, field)
    assert problem["title"] == "Invalid request body"
    recorded = "SELECT count(*) FROM events WHERE type = 'SubjectErased'"
    assert await pool.fetchval(recorded) == 0
    assert set(await lead_ids(pool)) == {"Asha"}


async def test_a_preview_names_what_an_erasure_would_take_and_erases_nothing(
    client: Client, pool: asyncpg.Pool
) -> None:
    """`POST /v1/erasures/preview`: the subjects and lead ids the erasure takes afterwards,
    every lead holding the number (another person's lead with it as an alternate too), and
    nothing erased or recorded; its bad bodies are refused as the erasure's are."""
    tenant = await make_tenant(client, "acme", "DE", ["Sales"])
    asha = await imported_id(client, tenant, contact(tenant, Name="Asha"))
    ravi = await imported_id(
        client,
        tenant,
        contact(tenant, Name="Ravi", PhoneNumber1="+4930222222", PhoneNumber2="030 111111"),
    )
    account = Account(name="acme", key=tenant.key, native_key=tenant.native_key)
    ask = {"phone": "+49 30 111111"}
    response = await client.post(f"{ERASURES}/preview", json=ask, headers=native(account))
    assert response.status == 200, await response.text()
    shown = await response.json()
    assert shown == {"by": "phone", "subjects": 2, "lead_ids": [asha, ravi], "rejected_rows": []}
    assert await pool.fetchval("SELECT count(*) FROM events WHERE type = 'SubjectErased'") == 0
    assert set(await lead_ids(pool)) == {"Asha", "Ravi"}
    erasure = await erase(client, account, ask)
    assert (erasure["subjects"], erasure["lead_ids"]) == (shown["subjects"], shown["lead_ids"])
    bad = await client.post(f"{ERASURES}/preview", json={"phone": "x"}, headers=native(account))
    assert bad.status == 400
    assert (await bad.json())["field"] == "phone"


async def test_a_body_that_names_a_field_twice_is_refused(
    client: Client, acme: Account, pool: asyncpg.Pool
) -> None:
    """`{"phone": A, "phone": B}` is neither read as A nor as B: 400 naming the field."""
    await add(client, acme, Name="Asha", phoneNumber="9876543210")
    response = await client.post(
        ERASURES,
        data=b'{"phone": "9812345678", "phone": "9876543210"}',
        headers={**native(acme), "Content-Type": "application/json"},
    )
    assert response.status == 400
    problem = await response.json()
    assert (problem["detail"], problem["field"]) == ("phone is given twice", "phone")
    assert set(await lead_ids(pool)) == {"Asha"}


async def test_a_dialling_pause_is_part_of_one_number(client: Client, acme: Account) -> None:
    """A comma before a few digits (Vicidial's pause before an extension) names one number:
    the request is taken."""
    await add(client, acme, Name="Asha", phoneNumber="9876543210")
    assert (await erase(client, acme, {"phone": "9876543210,,22"}))["subjects"] == 1


async def test_user_data_with_surrounding_spaces_finds_the_live_lead(
    client: Client, pool: asyncpg.Pool
) -> None:
    """A user_data sent with spaces around it finds the lead that holds it without them, as it
    finds that person's refused and deleted rows (their digests leave the spaces out)."""
    tenant = await make_tenant(client, "acme", "DE", ["Sales"])
    gone = await imported_id(client, tenant, contact(tenant, UserData="WS-123", Name="Asha"))
    account = Account(name="acme", key=tenant.key, native_key=tenant.native_key)
    erasure = await erase(client, account, {"user_data": " WS-123 "})
    assert (erasure["subjects"], erasure["lead_ids"]) == (1, [gone])
    assert await lead_ids(pool) == {}


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"phone": 5}', b'{"name": "x"}'])
async def test_malformed_or_mistyped_bodies_are_refused(
    client: Client, acme: Account, body: bytes
) -> None:
    """Malformed JSON, the wrong type or an unknown member: 400, never 500."""
    response = await client.post(ERASURES, data=body, headers=native(acme))
    assert response.status == 400
    assert response.content_type == "application/problem+json"


async def test_erasure_needs_a_native_key(client: Client, acme: Account) -> None:
    """No key, or another dialect's key: 401."""
    assert (await client.post(ERASURES, json={"lead_id": 1})).status == 401
    wrong = {"Authorization": f"Bearer {acme.key}"}
    assert (await client.post(ERASURES, json={"lead_id": 1}, headers=wrong)).status == 401
    assert (await client.get(f"{ERASURES}/x", headers=wrong)).status == 401


async def test_an_unknown_erasure_id_is_not_found(client: Client, acme: Account) -> None:
    """Not a uuid, or a uuid of no erasure: 404 problem."""
    for erasure_id in ("nope", "00000000-0000-0000-0000-000000000000"):
        response = await client.get(f"{ERASURES}/{erasure_id}", headers=native(acme))
        assert response.status == 404


async def test_the_audit_trail_shows_who_erased(client: Client, acme: Account) -> None:
    """SubjectErased is in the audit, with the actor's credential and no personal data."""
    await add(client, acme, Name="Asha")
    await erase(client, acme, {"phone": "9876543210"})
    response = await client.get("/v1/audit?type=SubjectErased", headers=native(acme))
    events = (await response.json())["events"]
    assert len(events) == 1
    assert events[0]["actor"]["dialect"] == "native"
    assert "9876543210" not in await response.text()
    await admin(client, "GET", "/accounts/acme")


async def test_a_number_a_lead_no_longer_has_still_finds_it(
    client: Client, pool: asyncpg.Pool
) -> None:
    """A jtel overwrite changes a contact's number: erasing by the old number still finds the
    lead that once held it (its history does), though `contacts` no longer has it."""
    tenant = await make_tenant(client, "acme", "DE", ["Sales"])
    first = contact(tenant, UserData="old-ud", PhoneNumber1="+4930111111")
    lead_id = await imported_id(client, tenant, first)
    changed = contact(tenant, UserData="old-ud", PhoneNumber1="+4930222222")
    assert await imported_id(client, tenant, changed, "?overwriteDuplicates=true") == lead_id
    account = Account(name="acme", key=tenant.key, native_key=tenant.native_key)
    erasure = await erase(client, account, {"phone": "030 111111"})
    assert erasure["lead_ids"] == [lead_id]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_erasing_a_lead_by_id_erases_the_job_rows_refused_as_its_duplicates(
    client: Client, pool: asyncpg.Pool
) -> None:
    """A Flexydial upload's row refused because the lead exists holds the person's number,
    name and email: erased with the lead by its id; the upload's other row, a new lead, stays."""
    who = await flexydial_tenant(client)
    await flexydial_insert(client, who, {"numeric": "9700000110", "first_name": "Tara"})
    lead_id = await pool.fetchval("SELECT lead_id FROM leads")
    dup = {"numeric": "09700000110", "first_name": "TaraDup", "email": "tara@dup.com"}
    await flexydial_insert(client, who, dup, {"numeric": "9700000111", "first_name": "Other"})
    job_id = await pool.fetchval("SELECT max(job_id) FROM jobs")
    job = await client.get(f"/v1/jobs/{job_id}", headers=who.native)
    (row,) = (await job.json())["rejected_rows"]
    assert (row["row_number"], row["existing_lead_ids"]) == (1, [lead_id])
    account = Account(name="acme", key="", native_key=who.native["Authorization"][7:])
    erasure = await erase(client, account, {"lead_id": lead_id})
    assert erasure["rejected_rows"] == [[job_id, 1]]
    assert erasure["subjects"] == 2
    job = await client.get(f"/v1/jobs/{job_id}", headers=who.native)
    assert "tara@dup.com" not in await job.text()
    assert await pool.fetchval("SELECT array_agg(first_name) FROM leads") == ["Other"]
