"""Erasure by a number Vicidial dialled with a `phone_code` other than the account's country:
the lead's own key reads its national digits in the account's region (Vicidial's duplicate
checks compare `phone_number` alone), so the number as the person knows it, with its country
code, must find the lead, its refusals and its past numbers through the lookup digests."""

from __future__ import annotations

import asyncpg

from tests.api.test_erasures import erase
from tests.api.test_ozonetel_add import Account
from tests.api.test_vicidial_non_agent import Tenant, add, added_id, native_lead, tenant, update
from tests.support import Client


def account(who: Tenant) -> Account:
    """The tenant as the erasure tests' helper takes it (the native key is all it uses)."""
    key = who.native["Authorization"].removeprefix("Bearer ")
    return Account(name="acme", key=key, native_key=key)


async def test_a_lead_with_another_country_code_is_found_by_its_e164_number(
    client: Client, pool: asyncpg.Pool
) -> None:
    """A US number on an Indian account, and its refused duplicate: both erased by the number
    written with +1; a lead dialled with the account's own code stays."""
    who = await tenant(client)
    lead = added_id(await add(client, who, "2025550123", phone_code="1", first_name="Asha"))
    refused = await add(client, who, "2025550123", phone_code="1", duplicate_check="DUPLIST")
    assert refused.startswith("ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST")
    other = added_id(await add(client, who, "9812345678", "second", phone_code="91"))
    erasure = await erase(client, account(who), {"phone": "+1 202-555-0123"})
    assert erasure["lead_ids"] == [lead]
    assert erasure["subjects"] == 2  # the lead and the refused row
    assert await pool.fetchval("SELECT array_agg(lead_id) FROM leads") == [other]


async def test_a_deleted_lead_and_a_changed_code_are_found_by_every_number(
    client: Client, pool: asyncpg.Pool
) -> None:
    """The spelling is recorded with the write: a lead deleted since is found by it, and so is
    a lead by each number update_lead gave it, the old and the new."""
    who = await tenant(client)
    gone = added_id(await add(client, who, "2025550123", phone_code="1"))
    assert (await update(client, who, lead_id=gone, delete_lead="Y")).startswith("SUCCESS")
    moved = added_id(await add(client, who, "4155550134", phone_code="1"))
    changed = await update(
        client,
        who,
        lead_id=moved,
        update_phone_number="Y",
        phone_number="07700900123",
        phone_code="44",
    )
    assert changed.startswith("SUCCESS")
    assert (await erase(client, account(who), {"phone": "+12025550123"}))["lead_ids"] == [gone]
    uk = await erase(client, account(who), {"phone": "+44 7700 900123"})
    assert uk["lead_ids"] == [moved]
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_update_lead_inserting_with_a_code_is_found_by_it(client: Client) -> None:
    """insert_if_not_found=Y with phone_code 1: the lead added is found by +1 and its digits."""
    who = await tenant(client)
    answer = await update(
        client,
        who,
        search_method="PHONE_NUMBER",
        phone_number="2025550123",
        insert_if_not_found="Y",
        phone_code="1",
        list_id=who.lists["sales"],
    )
    lead = int(answer.split("|")[-3])
    erasure = await erase(client, account(who), {"phone": "1 (202) 555-0123"})
    assert erasure["lead_ids"] == [lead]


async def test_dnc_check_refuses_a_number_blocked_as_its_code_dials_it(client: Client) -> None:
    """A UK entry refuses add_lead's UK number with dnc_check, though the lead would be keyed
    in the account's region (as Vicidial compares phone_number); the Indian reading of the same
    digits is not blocked, and a lead added without the code is that Indian number."""
    who = await tenant(client)
    blocked = await client.post("/v1/dnc", json=[{"phone": "+44 20 7946 0958"}], headers=who.native)
    assert blocked.status == 201, await blocked.text()
    refused = await add(client, who, "2079460958", phone_code="44", dnc_check="Y")
    assert refused == f"ERROR: add_lead PHONE NUMBER IN DNC - 2079460958|{who.username}\n"
    indian = await add(client, who, "2079460958", phone_code="91", dnc_check="Y")
    assert indian.startswith("SUCCESS: add_lead LEAD HAS BEEN ADDED")


async def test_a_foreign_number_blocked_as_its_code_dials_it_is_marked_without_a_check(
    client: Client,
) -> None:
    """add_lead without dnc_check loads a number the registry blocks, marked so it is never
    dialled: also when it is blocked only as its phone_code dials it."""
    who = await tenant(client)
    blocked = await client.post("/v1/dnc", json=[{"phone": "+44 20 7946 0958"}], headers=who.native)
    assert blocked.status == 201, await blocked.text()
    lead = await native_lead(
        client, who, added_id(await add(client, who, "2079460958", phone_code="44"))
    )
    assert lead["dnc"] is True
    indian = await native_lead(client, who, added_id(await add(client, who, "2079460958")))
    assert indian["dnc"] is False
